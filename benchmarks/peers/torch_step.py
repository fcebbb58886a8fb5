#!/usr/bin/env python3
"""The PyTorch peer of `npm run bench`: the same training step as orthornn's, timed in the same run.

One step, float32, time-major (docs/math.md):
    s   = max(0, 2m(σ(p) − ½) + 1)          W = U diag(s) Vᵀ, materialised once per step
    a_t = W h_{t−1} + (W_in x_t + b)        the input projection is one GEMM over all T·B rows
    h_t = tanh(a_t)                         h_0 = 0
    y_t = W_out h_t + c                     cross-entropy, mean over all steps or the last one
then autograd's BPTT, RMSprop (ρ = 0.9, ε = 1e-8) on W_in, b, p, W_out, c, and the Cayley step
    A = G Mᵀ − M Gᵀ,  M ← (I + η/2 A)⁻¹ (I − η/2 A) M = 2 (I + η/2 A)⁻¹ M − M
on U and V (torch.linalg.solve; the same algebra as orthornn's cayleyStep).

Two implementations of the recurrence are kept and the faster one is used per case, so the peer
is at its best: 'loop' (a Python loop of addmm + tanh) and 'fused' (torch._VF.rnn_tanh, the
C++ loop behind nn.RNN, fed the materialised W).

On a GPU ("device": "cuda" in hello) every tensor lives there, 'fused' is cuDNN's RNN, and each
timed step ends with torch.cuda.synchronize(), as ours ends with a sync. Float32 there is true
float32 unless hello says "tf32": true (PyTorch's own default lets cuDNN use TF32).

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.
    {"op": "hello", "threads": 2, "device": "cpu" | "cuda", "tf32": false}
    {"op": "setup", "case": {"n", "B", "T", "d", "k", "score"}, "margin", "lr", "seed"}
    {"op": "run", "steps": k, "warmup": w, "warmupSeconds": s}
                                              → {"times": [seconds per step]} (after w untimed steps,
                                                and more until they took s seconds)
    {"op": "cayley", "n", "reps", "lr"}       → {"times": [seconds per Cayley step]}
    {"op": "check", "dir", "case", "margin", "lr"}   (parameters and batch as raw files, see check())
    {"op": "quit"}
Every reply has "ok"; a failure replies {"ok": false, "error": "..."} and the peer carries on.
"""
import json
import os
import resource
import sys
import time
import traceback

import torch

NAMES = ['W_in', 'b', 'U', 'V', 'p', 'W_out', 'c']
DEVICE = torch.device('cpu')


def sync():
    if DEVICE.type == 'cuda':
        torch.cuda.synchronize(DEVICE)


def shapes(c):
    n, d, k = c['n'], c['d'], c['k']
    return {'W_in': (n, d), 'b': (n,), 'U': (n, n), 'V': (n, n), 'p': (n,), 'W_out': (k, n), 'c': (k,)}


class Step:
    """Parameters, a batch and the optimiser of one case."""

    def __init__(self, case, margin, lr, params, x, targets, recurrence='loop'):
        self.case, self.margin, self.lr, self.recurrence = case, margin, lr, recurrence
        self.P = {name: params[name].to(DEVICE, copy=True).requires_grad_(True) for name in NAMES}
        self.x, self.targets = x.to(DEVICE), targets.to(DEVICE)
        euclidean = [self.P[name] for name in ['W_in', 'b', 'p', 'W_out', 'c']]
        self.opt = torch.optim.RMSprop(euclidean, lr=lr, alpha=0.9, eps=1e-8)
        self.zero_bias = torch.zeros(case['n'], device=DEVICE)

    def loss(self):
        P, c = self.P, self.case
        T, B, n, d = c['T'], c['B'], c['n'], c['d']
        s = torch.clamp(2 * self.margin * (torch.sigmoid(P['p']) - 0.5) + 1, min=0)
        W = (P['U'] * s) @ P['V'].t()
        if self.recurrence == 'fused':
            h0 = torch.zeros(1, B, n, device=DEVICE)
            hs, _ = torch._VF.rnn_tanh(self.x, h0, [P['W_in'], W, P['b'], self.zero_bias], True, 1, 0.0, True, False, False)
        else:
            xin = torch.addmm(P['b'], self.x.reshape(T * B, d), P['W_in'].t()).reshape(T, B, n)
            Wt = W.t()
            h = torch.tanh(xin[0])
            hs = [h]
            for t in range(1, T):
                h = torch.tanh(torch.addmm(xin[t], h, Wt))
                hs.append(h)
            hs = hs[-1:] if c['score'] == 'last' else hs
            hs = torch.stack(hs)
        if c['score'] == 'last':
            y = torch.addmm(P['c'], hs[-1], P['W_out'].t())
        else:
            y = torch.addmm(P['c'], hs.reshape(T * B, n), P['W_out'].t())
        return torch.nn.functional.cross_entropy(y, self.targets)

    def gradients(self):
        for t in self.P.values():
            t.grad = None
        loss = self.loss()
        loss.backward()
        return loss

    def update(self):
        self.opt.step()
        with torch.no_grad():
            for name in ['U', 'V']:
                cayley_step(self.P[name], self.P[name].grad, self.lr)

    def step(self):
        loss = self.gradients()
        self.update()
        return loss


def cayley_step(M, G, lr):
    """M ← 2 (I + η/2 A)⁻¹ M − M with A = X − Xᵀ, X = G Mᵀ (in place)."""
    X = G @ M.t()
    L = torch.eye(M.shape[0], dtype=M.dtype, device=M.device)
    L.add_(X - X.t(), alpha=lr / 2)
    Y = torch.linalg.solve(L, M)
    M.mul_(-1).add_(Y, alpha=2)


def random_params(case, seed):
    g = torch.Generator().manual_seed(seed)
    n, d, k = case['n'], case['d'], case['k']

    def orthogonal():
        q, r = torch.linalg.qr(torch.randn(n, n, generator=g))
        return q * torch.sign(torch.diagonal(r))

    bound = (6 / (n + k)) ** 0.5
    return {
        'W_in': (torch.rand(n, d, generator=g) * 2 - 1) * 0.01,
        'b': torch.zeros(n),
        'U': orthogonal(),
        'V': orthogonal(),
        'p': torch.zeros(n),
        'W_out': (torch.rand(k, n, generator=g) * 2 - 1) * bound,
        'c': torch.zeros(k),
    }


def batch(case, seed):
    g = torch.Generator().manual_seed(seed + 1)
    T, B, d, k = case['T'], case['B'], case['d'], case['k']
    x = torch.randn(T, B, d, generator=g)
    rows = B if case['score'] == 'last' else T * B
    return x, torch.arange(rows) % k


def peak_rss_bytes():
    # This process's own peak (VmHWM): getrusage's maxrss also counts the pages it had at its
    # fork, those of the Node benchmark that spawned it.
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def timed_steps(step, count):
    times = []
    for _ in range(count):
        start = time.perf_counter()
        step.step()
        sync()
        times.append(time.perf_counter() - start)
    return times


class Peer:
    def __init__(self):
        self.step = None

    def hello(self, msg):
        global DEVICE
        threads = int(msg.get('threads', 0)) or os.cpu_count()
        torch.set_num_threads(threads)
        DEVICE = torch.device(msg.get('device', 'cpu'))
        tf32 = bool(msg.get('tf32', False))
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.zeros(1, device=DEVICE)  # fails here, with the reason, when the device is unusable
        return {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'device': str(DEVICE), 'tf32': tf32,
                'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY')}

    def setup(self, msg):
        case, margin, lr, seed = msg['case'], float(msg['margin']), float(msg['lr']), int(msg.get('seed', 1))
        torch.manual_seed(seed)
        params = random_params(case, seed)
        x, targets = batch(case, seed)
        # The faster recurrence for this case, judged on two steps each after one of warm-up.
        best = None
        for recurrence in ['loop', 'fused']:
            step = Step(case, margin, lr, params, x, targets, recurrence)
            timed_steps(step, 1)
            t = min(timed_steps(step, 2))
            if best is None or t < best[0]:
                best = (t, recurrence)
        self.step = Step(case, margin, lr, params, x, targets, best[1])
        timed_steps(self.step, 1)
        return {'recurrence': best[1]}

    def run(self, msg):
        if self.step is None:
            raise RuntimeError('run before setup')
        warmup, seconds = int(msg.get('warmup', 0)), float(msg.get('warmupSeconds', 0))
        start = time.perf_counter()
        done = 0
        while done < warmup or time.perf_counter() - start < seconds:
            self.step.step()
            done += 1
        sync()
        times = timed_steps(self.step, int(msg['steps']))
        return {'times': times, 'peakRssBytes': peak_rss_bytes()}

    def cayley(self, msg):
        n, reps, lr = int(msg['n']), int(msg['reps']), float(msg.get('lr', 1e-3))
        g = torch.Generator().manual_seed(n)
        q, r = torch.linalg.qr(torch.randn(n, n, generator=g))
        M = (q * torch.sign(torch.diagonal(r))).to(DEVICE)
        G = (torch.randn(n, n, generator=g) * 0.01).to(DEVICE)
        cayley_step(M, G, lr)  # warm-up
        sync()
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            cayley_step(M, G, lr)
            sync()
            times.append(time.perf_counter() - start)
        return {'times': times}

    def check(self, msg):
        """Loss and gradients at given parameters and batch, then the loss after one training step.

        `dir` holds NAME.f32 (little-endian float32, row-major, docs/math.md §3 layouts), x.f32
        (T × B × d) and targets.i32; the gradients are written back as grad-NAME.f32.
        """
        case, margin, lr, folder = msg['case'], float(msg['margin']), float(msg['lr']), msg['dir']

        def load(name, shape, dtype):
            data = bytearray(open(os.path.join(folder, name), 'rb').read())
            return torch.frombuffer(data, dtype=dtype).reshape(shape).clone()

        params = {name: load(name + '.f32', shape, torch.float32) for name, shape in shapes(case).items()}
        x = load('x.f32', (case['T'], case['B'], case['d']), torch.float32)
        rows = case['B'] if case['score'] == 'last' else case['T'] * case['B']
        targets = load('targets.i32', (rows,), torch.int32).long()
        out = {}
        for recurrence in ['loop', 'fused']:
            step = Step(case, margin, lr, params, x, targets, recurrence)
            loss0 = step.gradients().item()
            if recurrence == 'loop':
                for name in NAMES:
                    with open(os.path.join(folder, 'grad-' + name + '.f32'), 'wb') as f:
                        f.write(step.P[name].grad.contiguous().cpu().numpy().tobytes())
            step.update()
            with torch.no_grad():
                loss1 = step.loss().item()
            out[recurrence] = {'loss': loss0, 'lossAfterStep': loss1}
        return out

    def handle(self, msg):
        op = msg.get('op')
        if op not in ('hello', 'setup', 'run', 'cayley', 'check'):
            raise ValueError(f'unknown op {op!r}')
        return getattr(self, op)(msg)


def main():
    torch.set_grad_enabled(True)
    peer = Peer()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
            if msg.get('op') == 'quit':
                break
            reply = {'ok': True, **peer.handle(msg)}
        except Exception as err:  # reported to the bench, which says what failed and carries on
            reply = {'ok': False, 'error': f'{type(err).__name__}: {err}', 'trace': traceback.format_exc(limit=3)}
        sys.stdout.write(json.dumps(reply) + '\n')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
