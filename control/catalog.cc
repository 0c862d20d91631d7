#include "control/catalog.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "control/absl_view.h"
#include "control/errors.h"
#include "protocol/assert.h"

namespace sluice::control {
namespace {

constexpr std::string_view kFormat = "sluice-catalog";
constexpr int kFormatVersion = 1;

uint64_t SystemNowMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

absl::Status NotFound(std::string_view name) {
  return MakeError(absl::StatusCode::kNotFound, errc::kNotFound, "name",
                   absl::StrCat("no queue named \"", A(name), "\""));
}

template <typename V>
auto FindByName(V& queues, std::string_view name) {
  return std::find_if(queues.begin(), queues.end(),
                      [name](const QueueMeta& q) { return q.spec.name == name; });
}

}  // namespace

// ---- snapshot -------------------------------------------------------------------------------

CatalogSnapshot::CatalogSnapshot(uint64_t version, std::vector<QueueMeta> queues)
    : version_(version), queues_(std::move(queues)) {
  for (size_t i = 1; i < queues_.size(); ++i) SLUICE_ASSERT(queues_[i - 1].id < queues_[i].id);
}

const QueueMeta* CatalogSnapshot::Find(std::string_view name) const {
  auto it = FindByName(queues_, name);
  return it == queues_.end() ? nullptr : &*it;
}

const QueueMeta* CatalogSnapshot::FindById(uint32_t id) const {
  auto it = std::lower_bound(queues_.begin(), queues_.end(), id,
                             [](const QueueMeta& q, uint32_t v) { return q.id < v; });
  return it != queues_.end() && it->id == id ? &*it : nullptr;
}

uint32_t CatalogSnapshot::DeadLetterId(const QueueMeta& queue) const {
  const std::string& dlq = queue.spec.attributes.dead_letter_queue;
  if (dlq.empty()) return 0;
  const QueueMeta* target = Find(dlq);
  return target ? target->id : 0;
}

SnapshotDiff Diff(const CatalogSnapshot& before, const CatalogSnapshot& after) {
  SnapshotDiff d;
  for (const QueueMeta& q : after.queues()) {
    const QueueMeta* old = before.FindById(q.id);
    if (old == nullptr) {
      d.added.push_back(q.id);
    } else if (!(*old == q)) {
      d.changed.push_back(q.id);
    }
  }
  for (const QueueMeta& q : before.queues()) {
    if (after.FindById(q.id) == nullptr) d.removed.push_back(q.id);
  }
  return d;
}

// ---- catalog --------------------------------------------------------------------------------

Catalog::Catalog(MetadataStore& store, MetaOptions options, CatalogLimits limits, Clock clock)
    : store_(store), options_(std::move(options)), limits_(limits),
      clock_(clock ? std::move(clock) : Clock(SystemNowMs)),
      snapshot_(std::make_shared<const CatalogSnapshot>(0, std::vector<QueueMeta>{})) {}

absl::StatusOr<Catalog::State> Catalog::Parse(std::string_view document, const MetaOptions& options,
                                              const std::string& where) {
  const Json body = Json::parse(document, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object() || body.value("format", "") != kFormat ||
      body.value("format_version", 0) != kFormatVersion || !body.contains("queues") ||
      !body["queues"].is_array() || !body.contains("next_id") ||
      !body["next_id"].is_number_unsigned()) {
    return absl::DataLossError(absl::StrCat(where, ": not a sluice catalog document"));
  }
  State state;
  state.next_id = body["next_id"].get<uint32_t>();
  for (const Json& q : body["queues"]) {
    absl::StatusOr<QueueMeta> meta = MetaFromJson(q, options);
    if (!meta.ok()) {
      return absl::DataLossError(absl::StrCat(where, ": queue ", q.dump(), ": ",
                                              meta.status().message()));
    }
    if (meta->id >= state.next_id) {
      return absl::DataLossError(absl::StrCat(where, ": queue id ", meta->id, " >= next_id"));
    }
    state.queues.push_back(std::move(*meta));
  }
  std::sort(state.queues.begin(), state.queues.end(),
            [](const QueueMeta& a, const QueueMeta& b) { return a.id < b.id; });
  for (size_t i = 1; i < state.queues.size(); ++i) {
    if (state.queues[i - 1].id == state.queues[i].id ||
        FindByName(state.queues, state.queues[i].spec.name) != state.queues.begin() + i) {
      return absl::DataLossError(absl::StrCat(where, ": duplicate queue ", state.queues[i].id));
    }
  }
  return state;
}

absl::StatusOr<std::unique_ptr<Catalog>> Catalog::Open(MetadataStore& store, MetaOptions options,
                                                       CatalogLimits limits, Clock clock) {
  std::unique_ptr<Catalog> catalog(new Catalog(store, std::move(options), limits, std::move(clock)));
  absl::StatusOr<std::optional<StoredDocument>> doc = store.Load();
  if (!doc.ok()) return doc.status();
  if (!doc->has_value()) return catalog;
  absl::StatusOr<State> state = Parse((*doc)->body, catalog->options_, store.Describe());
  if (!state.ok()) return state.status();
  state->version = (*doc)->version;
  catalog->snapshot_ = std::make_shared<const CatalogSnapshot>(state->version, state->queues);
  catalog->state_ = std::move(*state);
  return catalog;
}

std::string Catalog::Export() const {
  std::lock_guard lock(mu_);
  return Serialize(state_);
}

absl::Status Catalog::Replace(std::string_view document) {
  absl::StatusOr<State> next = Parse(document, options_, "replicated catalog");
  if (!next.ok()) return next.status();
  std::lock_guard lock(mu_);
  if (Serialize(*next) == Serialize(state_)) return absl::OkStatus();  // nothing new
  return Commit(std::move(*next));
}

std::string Catalog::Serialize(const State& state) {
  Json queues = Json::array();
  for (const QueueMeta& q : state.queues) queues.push_back(ToJson(q, /*all=*/true));
  return Json{{"format", kFormat},
              {"format_version", kFormatVersion},
              {"next_id", state.next_id},
              {"queues", std::move(queues)}}
             .dump(1);
}

absl::Status Catalog::Commit(State next) {
  absl::StatusOr<uint64_t> version = store_.Save(state_.version, Serialize(next));
  if (!version.ok()) {
    return MakeError(absl::StatusCode::kUnavailable, errc::kUnavailable, "",
                     absl::StrCat("metadata store (", store_.Describe(),
                                  "): ", version.status().message()));
  }
  next.version = *version;
  snapshot_ = std::make_shared<const CatalogSnapshot>(next.version, next.queues);
  state_ = std::move(next);
  return absl::OkStatus();
}

absl::Status Catalog::CheckReferences(const State& state, const QueueSpec& spec) {
  const std::string& dlq = spec.attributes.dead_letter_queue;
  if (dlq.empty()) return absl::OkStatus();
  const std::string field = "attributes.dead_letter_queue";
  auto it = FindByName(state.queues, dlq);
  if (it == state.queues.end()) {
    return FieldError(field, absl::StrCat("dead_letter_queue \"", dlq, "\" does not exist"));
  }
  if (it->spec.type != QueueType::kWork) {
    return FieldError(field, absl::StrCat("dead_letter_queue \"", dlq, "\" is not a work queue"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CreateResult> Catalog::Create(const QueueSpec& spec) {
  if (absl::Status st = Validate(spec, options_); !st.ok()) return st;
  std::lock_guard lock(mu_);
  auto it = FindByName(state_.queues, spec.name);
  if (it != state_.queues.end()) {
    if (it->spec == spec) return CreateResult{*it, false};
    std::string_view field = it->spec.type != spec.type               ? "type"
                             : it->spec.partitions != spec.partitions ? "partitions"
                                                                      : "";
    std::string f = field.empty()
                        ? absl::StrCat("attributes.",
                                       A(FirstDifference(it->spec.attributes, spec.attributes)))
                        : std::string(field);
    return MakeError(absl::StatusCode::kAlreadyExists, errc::kConflict, f,
                     absl::StrCat("queue \"", spec.name, "\" exists with a different ", f,
                                  "; update it, or delete it first"));
  }
  if (absl::Status st = CheckReferences(state_, spec); !st.ok()) return st;
  if (state_.queues.size() >= limits_.max_queues) {
    return MakeError(absl::StatusCode::kResourceExhausted, errc::kLimit, "",
                     absl::StrCat("the catalog holds its maximum of ", limits_.max_queues,
                                  " queues"));
  }
  if (state_.next_id == UINT32_MAX) {
    return MakeError(absl::StatusCode::kResourceExhausted, errc::kLimit, "", "queue ids exhausted");
  }
  State next = state_;
  QueueMeta meta;
  meta.id = next.next_id++;
  meta.spec = spec;
  meta.created_at_ms = meta.updated_at_ms = clock_();
  next.queues.push_back(meta);  // ids grow: stays sorted
  if (absl::Status st = Commit(std::move(next)); !st.ok()) return st;
  return CreateResult{std::move(meta), true};
}

std::vector<QueueMeta> Catalog::List() const { return Snapshot()->queues(); }

absl::StatusOr<QueueMeta> Catalog::Describe(std::string_view name) const {
  std::shared_ptr<const CatalogSnapshot> snap = Snapshot();
  const QueueMeta* q = snap->Find(name);
  if (q == nullptr) return NotFound(name);
  return *q;
}

absl::StatusOr<QueueMeta> Catalog::Update(std::string_view name, const AttributePatch& patch) {
  std::lock_guard lock(mu_);
  auto it = FindByName(state_.queues, name);
  if (it == state_.queues.end()) return NotFound(name);
  QueueSpec spec = it->spec;
  ApplyPatch(patch, &spec.attributes);
  for (const std::string& f : patch.fields) {
    const AttributeInfo* info = FindAttribute(f);
    SLUICE_ASSERT(info != nullptr);  // PatchFromJson checked the names
    if (!info->live && !SameAttribute(f, it->spec.attributes, spec.attributes)) {
      return MakeError(absl::StatusCode::kInvalidArgument, errc::kImmutable,
                       absl::StrCat("attributes.", f),
                       absl::StrCat(f, " cannot change on an existing queue"));
    }
  }
  if (absl::Status st = Validate(spec, options_); !st.ok()) return st;
  if (absl::Status st = CheckReferences(state_, spec); !st.ok()) return st;
  if (spec == it->spec) return *it;

  State next = state_;
  QueueMeta& q = *FindByName(next.queues, name);
  q.spec = std::move(spec);
  q.updated_at_ms = clock_();
  QueueMeta out = q;
  if (absl::Status st = Commit(std::move(next)); !st.ok()) return st;
  return out;
}

absl::StatusOr<QueueMeta> Catalog::Purge(std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = FindByName(state_.queues, name);
  if (it == state_.queues.end()) return NotFound(name);
  State next = state_;
  QueueMeta& q = *FindByName(next.queues, name);
  ++q.purge_generation;
  q.purged_at_ms = clock_();
  QueueMeta out = q;
  if (absl::Status st = Commit(std::move(next)); !st.ok()) return st;
  return out;
}

absl::StatusOr<QueueMeta> Catalog::Delete(std::string_view name) {
  std::lock_guard lock(mu_);
  auto it = FindByName(state_.queues, name);
  if (it == state_.queues.end()) return NotFound(name);
  for (const QueueMeta& other : state_.queues) {
    if (other.spec.attributes.dead_letter_queue == name && other.spec.name != name) {
      return MakeError(absl::StatusCode::kFailedPrecondition, errc::kConflict, "name",
                       absl::StrCat("queue \"", A(name), "\" is the dead_letter_queue of \"",
                                    other.spec.name, "\"; change or delete that queue first"));
    }
  }
  QueueMeta out = *it;
  State next = state_;
  next.queues.erase(FindByName(next.queues, name));
  if (absl::Status st = Commit(std::move(next)); !st.ok()) return st;
  return out;
}

std::shared_ptr<const CatalogSnapshot> Catalog::Snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

}  // namespace sluice::control
