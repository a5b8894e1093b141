#pragma once
// Runs a test scenario in a forked child process (POSIX), so that a crash (std::terminate, a
// segfault) or a hang in the code under test becomes a failed check in the parent instead of
// taking the whole test binary down. The scenario returns an exit code (0: success); it must not
// use CHECK/REQUIRE (they would report in the child).
#if defined(__unix__) || defined(__APPLE__)
#define RESPOOL_TEST_HAVE_FORK 1
#include <csignal>
#include <cstdio>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace respool_test {

struct child_result {
  bool finished = false;  // exited, or was killed by a signal, within the limit
  bool exited = false;    // exited normally (not by a signal)
  int code = -1;          // its exit code, if it exited
  int signal = 0;         // the signal that killed it, if one did
};

template <class F>
auto run_in_child(F scenario, std::chrono::milliseconds limit) -> child_result {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    // The test framework's fatal-signal handlers are not for the child: die plainly.
    for (int sig : {SIGABRT, SIGSEGV, SIGILL, SIGFPE, SIGBUS, SIGTERM}) std::signal(sig, SIG_DFL);
    int code = 99;
    try {
      code = scenario();
    } catch (...) {
      code = 98;
    }
    _exit(code);  // no destructors, no atexit: whatever the pool left running stays put
  }
  child_result r;
  if (pid < 0) return r;
  const auto end = std::chrono::steady_clock::now() + limit;
  int status = 0;
  for (;;) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      r.finished = true;
      break;
    }
    if (w < 0 || std::chrono::steady_clock::now() >= end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!r.finished) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return r;
  }
  r.exited = WIFEXITED(status);
  r.code = r.exited ? WEXITSTATUS(status) : -1;
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return r;
}

}  // namespace respool_test
#endif
