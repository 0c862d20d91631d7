// Helpers for the storage tests: a temporary directory per test (removed after), and a real
// shard PartitionLog producing sealed batches exactly as the engine does.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dataplane/shard/chunk_pool.h"
#include "dataplane/shard/partition_log.h"
#include "storage/uring_writer.h"

namespace sluice::storage::testing {

// mkdtemp under `parent` ("/tmp" = the local disk here; "/dev/shm" = tmpfs).
class TempDir {
 public:
  explicit TempDir(const std::string& parent = "/tmp") {
    std::string tmpl = parent + "/sluice-storage-test-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr) << parent;
    path_ = p != nullptr ? p : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::span<const std::byte> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string Str(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline std::string Payload(uint64_t offset, size_t size = 100) {
  std::string s = absl::StrCat("message-", offset, "-");
  while (s.size() < size) s.push_back(static_cast<char>('a' + (s.size() + offset) % 26));
  s.resize(size);
  return s;
}

// A shard-side log: records go in, sealed batches come out (4 KiB aligned, 64 bytes of room).
struct Producer {
  explicit Producer(uint32_t chunk_bytes = 64 << 10, uint32_t chunks = 64)
      : pool(chunk_bytes, chunks, 4096, {}), log(pool, Config(chunks)) {}
  static shard::LogConfig Config(uint32_t chunks) {
    shard::LogConfig c;
    c.indexed = true;
    c.max_chunks = chunks;
    c.max_index_entries = 1 << 20;
    c.batch_align_bytes = 4096;
    c.batch_header_bytes = 64;
    return c;
  }
  // Appends `n` records of `size` bytes (timestamps now_ns, now_ns + 1000, ...) and seals them.
  void Batch(uint32_t n, size_t size = 100) {
    for (uint32_t i = 0; i < n; ++i) {
      const uint64_t off = log.written_end().value;
      ASSERT_EQ(log.Append(Bytes(Payload(off, size)), 1'000'000 + off * 1000).errc, Errc::kOk);
    }
    log.Seal();
  }
  // Offers every undurable batch to the writer, polls until they are durable (or 10 s: an SQPOLL
  // ring's kernel thread may not run for a while on a loaded machine), marks them.
  void Flush(UringWriter& w, PartitionHandle h) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (log.durable_end().value < log.sealed_end().value &&
           std::chrono::steady_clock::now() < deadline) {
      log.ForEachUndurableBatch([&](const shard::SealedBatch& b) { w.Submit(h, b); });
      w.Poll([&](const Completion& c) {
        if (c.errc == Errc::kOk) log.MarkDurable(c.durable);
      });
      if (w.failed(h)) return;
    }
  }
  shard::ChunkPool pool;
  shard::PartitionLog log;
};

// Polls until nothing is in flight on the writer's ring (retention's unlinks, index writes), at
// most 10 s; returns the completions reported meanwhile.
inline std::vector<Completion> Settle(UringWriter& w) {
  std::vector<Completion> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    w.Poll([&](const Completion& c) { out.push_back(c); });
  } while (w.in_flight() > 0 && std::chrono::steady_clock::now() < deadline);
  w.Poll([&](const Completion& c) { out.push_back(c); });
  return out;
}

}  // namespace sluice::storage::testing
