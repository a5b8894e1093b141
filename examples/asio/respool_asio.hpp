#pragma once
// respool with Boost.Asio (example code to copy, not part of respool's headers; needs Boost 1.77
// or later for per-operation cancellation, Debian 12: libboost1.81-dev).
//
// `respool_asio::async_acquire(pool, timeout, token)` is an Asio asynchronous operation with the
// completion signature `void(boost::system::error_code, respool::lease<R>)`, so any completion
// token works:
//
//   respool::lease c = co_await respool_asio::async_acquire(db, 500ms, asio::use_awaitable);
//   respool_asio::async_acquire(db, 500ms, [](boost::system::error_code ec, auto lease) { ... });
//   auto [ec, c] = co_await respool_asio::async_acquire(db, 500ms, asio::as_tuple(asio::use_awaitable));
//
// As Asio requires, the handler runs through its associated executor (posted, never inside the
// call), whichever thread the pool served it on. Per-operation cancellation: a cancellation slot
// bound to the handler (asio::bind_cancellation_slot, a coroutine's cancellation state, the
// awaitable operators `||`) cancels the wait through the pool's stop token; the handler then
// gets asio::error::operation_aborted, as Asio's own operations report it. Other failures come
// as respool::errc codes wrapped in boost::system::error_code (`ec == respool::errc::timeout`
// holds).
#include <respool/pool.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <memory>
#include <stop_token>
#include <system_error>
#include <utility>

namespace respool_asio {

namespace asio = boost::asio;

namespace detail {
inline auto to_asio(std::error_code ec) -> boost::system::error_code {
  if (ec == respool::errc::cancelled) return asio::error::operation_aborted;
  return ec;  // Boost.System wraps a std::error_code, category and all
}
}  // namespace detail

template <class Pool, class Rep, class Period, class CompletionToken>
auto async_acquire(Pool& pool, std::chrono::duration<Rep, Period> timeout, CompletionToken&& token) {
  using lease_type = typename Pool::lease_type;
  return asio::async_initiate<CompletionToken, void(boost::system::error_code, lease_type)>(
      [&pool, timeout](auto handler) {
        auto slot = asio::get_associated_cancellation_slot(handler);
        // Keeps the handler's executor (an io_context) from running out of work while it waits.
        auto work = asio::make_work_guard(asio::get_associated_executor(handler));
        // The stop source outlives the slot's handler: both hold it.
        auto stop = std::make_shared<std::stop_source>();
        if (slot.is_connected())
          slot.assign([stop](asio::cancellation_type) { stop->request_stop(); });
        // Called by the pool, on whichever thread served it: post to the handler's executor,
        // where the slot is cleared before the handler runs (slots are not thread-safe).
        auto complete = [h = std::move(handler), work = std::move(work), slot,
                         stop](std::error_code ec, lease_type lease) mutable {
          auto ex = work.get_executor();
          asio::post(ex, [h = std::move(h), work = std::move(work), slot, ec,
                          lease = std::move(lease)]() mutable {
            if (slot.is_connected()) slot.clear();
            std::move(h)(detail::to_asio(ec), std::move(lease));
          });
        };
        pool.async_acquire(timeout, std::move(complete), stop->get_token());
      },
      token);
}

}  // namespace respool_asio
