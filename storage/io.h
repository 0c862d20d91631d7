// Small blocking file helpers for the control path (start-up, segment roll, retention, tools):
// every failure comes back as an absl::Status naming the call and the path. Nothing here is on
// the per-batch path; that goes through io_uring (uring_writer.h, uring_reader.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sluice::storage {

absl::Status ErrnoStatus(int err, std::string_view call, std::string_view path);

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& o) noexcept : fd_(o.Release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) { Reset(); fd_ = o.Release(); }
    return *this;
  }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { int f = fd_; fd_ = -1; return f; }
  void Reset();

 private:
  int fd_ = -1;
};

// Opens `path` with O_DIRECT added to `flags`. A filesystem without O_DIRECT (tmpfs answers
// EINVAL) gets the same open without it; *direct says which one happened.
absl::StatusOr<Fd> OpenMaybeDirect(const std::string& path, int flags, bool* direct);

// The same open without trying O_DIRECT (*direct = false).
absl::StatusOr<Fd> OpenBuffered(const std::string& path, int flags, bool* direct);

absl::Status FsyncDir(const std::string& dir);
absl::Status MakeDirs(const std::string& dir);  // mkdir -p; fsyncs each parent it creates
absl::Status PreadFull(int fd, std::span<std::byte> out, uint64_t position, size_t* got);
absl::Status PwriteFull(int fd, std::span<const std::byte> bytes, uint64_t position,
                        const std::string& path);
absl::StatusOr<uint64_t> FileSize(int fd, const std::string& path);

// Memory aligned for O_DIRECT (4 KiB), zeroed, freed on destruction.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes);
  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  size_t size() const { return size_; }
  std::span<std::byte> span() { return {data_.get(), size_}; }

 private:
  struct Free { void operator()(std::byte* p) const; };
  std::unique_ptr<std::byte, Free> data_;
  size_t size_ = 0;
};

inline uint64_t AlignUp(uint64_t v, uint64_t align) { return (v + align - 1) & ~(align - 1); }
inline uint64_t AlignDown(uint64_t v, uint64_t align) { return v & ~(align - 1); }

}  // namespace sluice::storage
