#include "client/redrive.h"

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/errors.h"
#include "client/producer.h"
#include "client/work_consumer.h"

namespace sluice::client {
namespace p = protocol;

namespace {

constexpr std::string_view kDlqPrefix = "sluice-dlq-";

std::optional<std::string_view> HeaderOf(const ReceivedMessage& m, std::string_view key) {
  for (const p::Header& h : m.headers) {
    if (h.key == key) return h.value;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<RedriveResult> Redrive(Connection& conn, std::string_view dlq,
                                      const RedriveOptions& o, absl::Status* first_error) {
  auto wc = WorkConsumer::Create(conn, dlq);
  if (!wc.ok()) return wc.status();
  RedriveResult result;
  std::map<std::string, std::unique_ptr<Producer>> producers;
  auto fail = [&](const absl::Status& s) {
    if (first_error != nullptr && first_error->ok()) *first_error = s;
  };
  while (o.max == 0 || result.moved + result.failed + result.no_target < o.max) {
    uint64_t want = o.batch == 0 ? 32 : o.batch;
    if (o.max != 0) want = std::min(want, o.max - result.moved - result.failed - result.no_target);
    auto batch = (*wc)->ReceiveSync({.max_messages = static_cast<uint16_t>(want),
                                     .visibility = o.visibility,
                                     .wait = absl::ZeroDuration()});  // stop when empty
    if (!batch.ok()) return batch.status();
    if (batch->empty()) break;
    std::vector<Receipt> done;
    std::vector<std::optional<absl::Status>> outcome(batch->size());
    for (size_t i = 0; i < batch->size(); ++i) {
      const ReceivedMessage& m = *(*batch)[i];
      std::string target = o.to;
      if (target.empty()) {
        if (auto src = HeaderOf(m, "sluice-dlq-source-queue"); src && !src->empty()) {
          target = std::string(*src);
        }
      }
      if (target.empty()) {
        ++result.no_target;
        outcome[i] = absl::OkStatus();  // nothing sent: stays leased, then visible again (the
        continue;                        // lease also keeps this run from seeing it twice)
      }
      auto it = producers.find(target);
      if (it == producers.end()) {
        auto prod = Producer::Create(conn, target, {.linger = absl::Milliseconds(1)});
        if (!prod.ok()) return prod.status();
        it = producers.emplace(target, *std::move(prod)).first;
      }
      Producer& prod = *it->second;
      std::vector<p::Header> headers;
      for (const p::Header& h : m.headers) {
        if (h.key.substr(0, kDlqPrefix.size()) != kDlqPrefix) headers.push_back(h);
      }
      OutgoingMessage out;
      out.payload = m.payload;
      out.key = m.key;
      out.priority = m.priority;
      out.headers = headers;
      out.reply_to = m.reply_to;
      out.correlation_id = m.correlation_id;
      out.group_id = m.group_id;
      out.timestamp_ns = m.timestamp_ns;
      // A dedup id of this dead letter's own (the original one is dropped: its window would
      // swallow the message): an id wins over the content, so a target with content_dedup does
      // not take the same body sent within its window as a duplicate either, while a redrive
      // retried after a crash between produce and delete is deduplicated by the id.
      const std::string dedup_id =
          absl::StrCat("sluice-redrive:", absl::string_view(dlq.data(), dlq.size()), ":",
                       m.partition, ":", m.offset);
      out.dedup_id = dedup_id;
      // Back to its own partition when it returns to its source queue without a key or group
      // (keeps per-partition order for what has no routing key).
      uint32_t source_partition = 0;
      if (m.key.empty() && m.group_id.empty() && o.to.empty()) {
        if (auto sp = HeaderOf(m, "sluice-dlq-source-partition");
            sp && absl::SimpleAtoi(Sv(*sp), &source_partition) &&
            source_partition < prod.queue().partitions) {
          out.partition = static_cast<uint16_t>(source_partition);
        }
      }
      const Receipt receipt = ReceiptOf(m);
      absl::Status s = prod.Send(out, [&, i, receipt](const absl::Status& st, uint16_t, uint64_t) {
        outcome[i] = st;
        if (st.ok()) done.push_back(receipt);
      });
      if (!s.ok()) outcome[i] = s;
    }
    for (auto& [name, prod] : producers) {
      if (absl::Status s = prod->Flush(o.timeout); !s.ok()) fail(s);
    }
    for (size_t i = 0; i < outcome.size(); ++i) {
      if (!outcome[i]) {
        ++result.failed;  // no acknowledgement in time
        continue;
      }
      if (!outcome[i]->ok()) {
        ++result.failed;
        fail(*outcome[i]);
      }
    }
    if (!done.empty()) {
      auto deleted = (*wc)->DeleteSync(done);
      if (!deleted.ok()) return deleted.status();
      for (const absl::Status& s : *deleted) {
        if (s.ok()) {
          ++result.moved;
        } else {
          ++result.failed;  // appended to the target, but its lease ran out: moved twice later
          fail(s);
        }
      }
    }
  }
  return result;
}

}  // namespace sluice::client
