#pragma once
/**
 * `detail::segmented_queue<T>`: a FIFO made of fixed-size chunks, allocated as it grows.
 *
 * The thread pool's queue is bounded by `queue_capacity`, which may be large (a million) while the
 * queue is usually short, so its memory must follow its length. A ring that doubles would copy
 * every queued task while the pool's mutex is held (tens of megabytes at a million tasks: every
 * thread stalls), and touch fresh pages each time; `std::deque` is close, but keeps no spare block
 * and its block size is the implementation's. Here a push or pop moves one element; a chunk is
 * allocated every `chunk_size` pushes at worst, and one emptied chunk is kept for reuse, so a queue
 * whose length hovers around a chunk boundary does not allocate at all. The bound itself is the
 * caller's business (the pool checks `size()` against its capacity).
 *
 * **Example**:
 * ```cpp
 * respool::detail::segmented_queue<int> q;
 * q.push_back(1);
 * q.push_back(2);
 * int first = q.pop_front();  // 1
 * ```
 */
#include <cassert>
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN

namespace detail {

template <class T>
class segmented_queue {
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "segmented_queue moves elements in and out and must not fail half-way");

 public:
  /// Elements per chunk: 128 tasks of 64 bytes make an 8 KiB chunk, small enough for malloc to
  /// recycle (no fresh pages from the kernel) and large enough to allocate rarely.
  static constexpr std::size_t chunk_size = 128;

  segmented_queue() = default;
  segmented_queue(const segmented_queue&) = delete;
  auto operator=(const segmented_queue&) -> segmented_queue& = delete;
  ~segmented_queue() {
    while (size_ > 0) static_cast<void>(pop_front());
    delete head_;  // the last (now empty) chunk; head_ == tail_ here
    delete spare_;
  }

  [[nodiscard]] auto size() const noexcept -> std::size_t { return size_; }
  [[nodiscard]] auto empty() const noexcept -> bool { return size_ == 0; }

  /// Strong guarantee: if a new chunk cannot be allocated, `value` is untouched.
  void push_back(T&& value) {
    if (tail_ == nullptr || tail_index_ == chunk_size) {
      chunk* fresh = spare_ != nullptr ? std::exchange(spare_, nullptr) : new chunk;
      fresh->next = nullptr;
      if (tail_ != nullptr) {
        tail_->next = fresh;
      } else {
        head_ = fresh;
      }
      tail_ = fresh;
      tail_index_ = 0;
    }
    ::new (tail_->raw(tail_index_)) T(std::move(value));
    ++tail_index_;
    ++size_;
  }

  auto pop_front() -> T {
    assert(size_ > 0);
    T* front = head_->object(head_index_);
    T value(std::move(*front));
    front->~T();
    ++head_index_;
    --size_;
    if (size_ == 0) {
      // Empty: start over at the beginning of the one chunk left (head_ == tail_).
      head_index_ = 0;
      tail_index_ = 0;
    } else if (head_index_ == chunk_size) {
      chunk* done = head_;
      head_ = head_->next;
      head_index_ = 0;
      if (spare_ == nullptr) {
        spare_ = done;
      } else {
        delete done;
      }
    }
    return value;
  }

 private:
  struct chunk {
    chunk* next = nullptr;
    alignas(T) unsigned char storage[chunk_size * sizeof(T)];

    auto raw(std::size_t i) noexcept -> void* { return storage + i * sizeof(T); }
    auto object(std::size_t i) noexcept -> T* { return std::launder(static_cast<T*>(raw(i))); }
  };

  chunk* head_ = nullptr;  // holds the front element at head_index_
  chunk* tail_ = nullptr;  // the next push goes to tail_index_
  chunk* spare_ = nullptr;
  std::size_t head_index_ = 0;
  std::size_t tail_index_ = 0;
  std::size_t size_ = 0;
};

}  // namespace detail

RESPOOL_NAMESPACE_END
