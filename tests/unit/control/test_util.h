// Helpers shared by the control-plane unit tests.
#pragma once

#include <stdlib.h>

#include <string>

#include "absl/status/status.h"
#include "control/errors.h"
#include "control/queue_meta.h"
#include "gtest/gtest.h"

namespace sluice::control::testing {

// Minimal specs: the name and type, every attribute at its default.
inline QueueSpec Work(const std::string& name, uint32_t partitions = 1) {
  QueueSpec s;
  s.name = name;
  s.type = QueueType::kWork;
  s.partitions = partitions;
  return s;
}
inline QueueSpec Stream(const std::string& name) {
  QueueSpec s;
  s.name = name;
  s.type = QueueType::kStream;
  return s;
}

// A fresh directory under the test temp dir.
inline std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "sluice-control-XXXXXX";
  char* dir = ::mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  return pattern;
}

// Expects `status` to be an error of `code` about `field`, whose message mentions `needle`.
inline void ExpectError(const absl::Status& status, absl::StatusCode code, const std::string& field,
                        const std::string& needle = "") {
  EXPECT_EQ(status.code(), code) << status;
  EXPECT_EQ(ErrorFieldOf(status), field) << status;
  if (!needle.empty()) {
    EXPECT_NE(std::string(status.message()).find(needle), std::string::npos)
        << "message \"" << status.message() << "\" lacks \"" << needle << "\"";
  }
}

}  // namespace sluice::control::testing
