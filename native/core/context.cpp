#include "context.h"

#include <cstdlib>
#include <set>

#include "denormals.h"
#include "threads.h"

namespace orthornn {

namespace {
// Every live context, so that an exit (process.exit(), an uncaught exception) stops their
// workers before the libraries' own exit handlers run: OpenBLAS joins its threads at exit
// and hangs if one of ours is still inside a BLAS call.
std::mutex& registryMutex() {
  static std::mutex* m = new std::mutex();
  return *m;
}
std::set<Context*>& registry() {
  static std::set<Context*>* s = new std::set<Context*>();
  return *s;
}
void abandonAllAtExit() {
  std::lock_guard<std::mutex> lock(registryMutex());
  for (Context* c : registry()) c->abandon();
}
}  // namespace

Context::Context(std::shared_ptr<Backend> backend) : backend_(std::move(backend)) {
  {
    std::lock_guard<std::mutex> lock(registryMutex());
    static const bool registered = (std::atexit(abandonAllAtExit), true);
    (void)registered;
    registry().insert(this);
  }
  worker_ = std::thread([this] { run(); });
}

Context::~Context() {
  {
    std::lock_guard<std::mutex> lock(registryMutex());
    registry().erase(this);
  }
  close();
}

void Context::abandon() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closing_ = true;
    queue_.clear();
  }
  wake_.notify_one();
  if (worker_.joinable()) worker_.join();
}

bool Context::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closing_;
}

void Context::enqueue(std::string op, Work work) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closing_) fail(ErrorCode::Disposed, "the context has been disposed");
    queue_.push_back(Task{std::move(op), std::move(work), nullptr});
  }
  wake_.notify_one();
}

void Context::enqueueCompletion(Completion completion) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closing_) fail(ErrorCode::Disposed, "the context has been disposed");
    queue_.push_back(Task{std::string(), nullptr, std::move(completion)});
  }
  wake_.notify_one();
}

void Context::close() {
  std::deque<Task> cancelled;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closing_ && !worker_.joinable()) return;
    closing_ = true;
    cancelled.swap(queue_);
  }
  wake_.notify_one();
  if (worker_.joinable()) worker_.join();
  const std::optional<Failure> disposed = Failure{ErrorCode::Disposed, "the context was disposed before the work finished"};
  for (Task& t : cancelled) {
    if (t.completion) runCompletion(t.completion, disposed);
  }
}

void Context::run() {
  nameThisThread("orthornn-ctx");
  flushDenormalsOnThisThread();
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return closing_ || !queue_.empty(); });
      if (queue_.empty()) return;  // closing and drained (close() took the rest)
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    if (task.completion) {
      std::optional<Failure> report;
      report.swap(failure_);
      runCompletion(task.completion, report);
      continue;
    }
    if (failure_) continue;  // skip work queued after a failure until it is reported
    try {
      backend_->beginOp(task.op);
      task.work(*backend_);
    } catch (const Error& e) {
      const auto* named = dynamic_cast<const OpError*>(&e);
      failure_ = Failure{e.code(), "op '" + (named ? named->op() : task.op) + "' failed: " + e.what()};
    } catch (const std::bad_alloc&) {
      failure_ = Failure{ErrorCode::OutOfMemory, "op '" + task.op + "' failed: out of memory"};
    } catch (const std::exception& e) {
      failure_ = Failure{ErrorCode::Internal, "op '" + task.op + "' failed: " + e.what()};
    } catch (...) {
      failure_ = Failure{ErrorCode::Internal, "op '" + task.op + "' failed: an unknown native exception"};
    }
  }
}

void Context::runCompletion(Completion& completion, const std::optional<Failure>& report) {
  // Completions are written not to throw; should one, the worker must go on (an exception
  // leaving a std::thread's function ends the process).
  try {
    completion(*backend_, report);
  } catch (...) {
  }
}

}  // namespace orthornn
