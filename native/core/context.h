// A context owns a backend and the worker thread that runs its ops in order (the CPU's
// "stream"; on CUDA the same thread drives the context's stream). Nothing here knows JS.
//
// Error model: when an op throws, the context remembers the first failure, skips the work
// queued after it, and hands the failure to the next completion (an await on the JS side),
// which clears it. So an error surfaces at the next await, naming the op, and later work
// never runs on the failed op's garbage.
#pragma once
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include "backend.h"
#include "error.h"

namespace orthornn {

struct Failure {
  ErrorCode code;
  std::string message;
};

class Context {
 public:
  using Work = std::function<void(Backend&)>;
  // Runs on the worker thread after everything queued before it, whether or not that
  // succeeded; receives the failure to report (if any), or Disposed when cancelled.
  using Completion = std::function<void(Backend&, const std::optional<Failure>&)>;

  explicit Context(std::shared_ptr<Backend> backend);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const std::shared_ptr<Backend>& backend() const { return backend_; }
  bool closed() const;

  void enqueue(std::string op, Work work);
  void enqueueCompletion(Completion completion);
  // Cancels everything not yet started (completions receive a Disposed failure), waits for
  // the op in flight, and stops the worker. Idempotent.
  void close();
  // At process exit: drops the queue without running its completions (their promises can no
  // longer settle), waits for the op in flight and stops the worker, so that no worker is
  // inside a library (BLAS) while that library's exit handlers run.
  void abandon();

 private:
  struct Task {
    std::string op;
    Work work;
    Completion completion;
  };
  void run();
  void runCompletion(Completion& completion, const std::optional<Failure>& report);

  std::shared_ptr<Backend> backend_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> queue_;
  bool closing_ = false;
  std::optional<Failure> failure_;  // touched only by the worker thread
  std::thread worker_;
};

}  // namespace orthornn
