#include "control/queue_meta.h"

#include <array>
#include <charconv>
#include <limits>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "control/absl_view.h"
#include "control/errors.h"

namespace sluice::control {
namespace {

template <typename E>
struct EnumName {
  std::string_view name;
  E value;
};
constexpr EnumName<Durability> kDurabilities[] = {
    {"none", Durability::kNone}, {"write", Durability::kWrite}, {"dsync", Durability::kDsync}};
constexpr EnumName<ReplicationMode> kReplicationModes[] = {{"async", ReplicationMode::kAsync},
                                                           {"sync", ReplicationMode::kSync}};
constexpr EnumName<Degrade> kDegrades[] = {{"deny", Degrade::kDeny}, {"allow", Degrade::kAllow}};
constexpr EnumName<QueueType> kQueueTypes[] = {{"stream", QueueType::kStream},
                                               {"work", QueueType::kWork}};

template <typename E, size_t N>
std::string_view NameOf(const EnumName<E> (&names)[N], E v) {
  for (const auto& n : names) if (n.value == v) return n.name;
  return "?";
}
template <typename E, size_t N>
std::optional<E> ValueOf(const EnumName<E> (&names)[N], std::string_view s) {
  for (const auto& n : names) if (n.name == s) return n.value;
  return std::nullopt;
}
template <typename E, size_t N>
std::string Choices(const EnumName<E> (&names)[N]) {
  std::string out;
  for (const auto& n : names) absl::StrAppend(&out, out.empty() ? "" : ", ", "\"", A(n.name), "\"");
  return out;
}

std::string AttrField(std::string_view name) { return absl::StrCat("attributes.", A(name)); }

absl::Status ReadUint(const Json& v, std::string_view field, uint64_t* out) {
  // A parsed non-negative literal is unsigned; one built in C++ from an int is signed.
  if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
    *out = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
    return absl::OkStatus();
  }
  if (v.is_number_integer()) return FieldError(field, absl::StrCat(A(field), " must not be negative"));
  if (v.is_number_float()) return FieldError(field, absl::StrCat(A(field), " must be an integer"));
  return FieldError(field, absl::StrCat(A(field), " must be a number, got ", v.type_name()));
}

absl::Status ReadString(const Json& v, std::string_view field, std::string* out) {
  if (!v.is_string()) {
    return FieldError(field, absl::StrCat(A(field), " must be a string, got ", v.type_name()));
  }
  *out = v.get<std::string>();
  return absl::OkStatus();
}

template <typename E, size_t N>
absl::Status ReadEnum(const EnumName<E> (&names)[N], const Json& v, std::string_view field, E* out) {
  std::string s;
  if (absl::Status st = ReadString(v, field, &s); !st.ok()) return st;
  std::optional<E> e = ValueOf(names, s);
  if (!e) {
    return FieldError(field, absl::StrCat(A(field), " must be one of ", Choices(names), ", got \"",
                                          s, "\""));
  }
  *out = *e;
  return absl::OkStatus();
}

// ---- per-attribute access, parallel to kInfo ------------------------------------------------

struct Access {
  Json (*get)(const QueueAttributes&);
  absl::Status (*set)(QueueAttributes&, const Json&, std::string_view field);
  void (*copy)(QueueAttributes&, const QueueAttributes&);
  uint64_t (*number)(const QueueAttributes&);  // kUint only
};

template <auto M>
Access UintAccess() {
  return {
      [](const QueueAttributes& a) { return Json(a.*M); },
      [](QueueAttributes& a, const Json& v, std::string_view field) {
        using T = std::remove_reference_t<decltype(a.*M)>;
        uint64_t x = 0;
        if (absl::Status st = ReadUint(v, field, &x); !st.ok()) return st;
        if (x > std::numeric_limits<T>::max()) {
          return FieldError(field, absl::StrCat(A(field), " is out of range: ", x));
        }
        a.*M = static_cast<T>(x);
        return absl::OkStatus();
      },
      [](QueueAttributes& d, const QueueAttributes& s) { d.*M = s.*M; },
      [](const QueueAttributes& a) { return static_cast<uint64_t>(a.*M); }};
}

template <auto M>
Access BoolAccess() {
  return {[](const QueueAttributes& a) { return Json(a.*M); },
          [](QueueAttributes& a, const Json& v, std::string_view field) {
            if (!v.is_boolean()) {
              return FieldError(field, absl::StrCat(A(field), " must be true or false, got ",
                                                    v.type_name()));
            }
            a.*M = v.get<bool>();
            return absl::OkStatus();
          },
          [](QueueAttributes& d, const QueueAttributes& s) { d.*M = s.*M; }, nullptr};
}

#define SLUICE_ENUM_ACCESS(member, table)                                                \
  Access{[](const QueueAttributes& a) { return Json(std::string(NameOf(table, a.member))); }, \
         [](QueueAttributes& a, const Json& v, std::string_view field) {                 \
           return ReadEnum(table, v, field, &a.member);                                  \
         },                                                                              \
         [](QueueAttributes& d, const QueueAttributes& s) { d.member = s.member; }, nullptr}

constexpr uint64_t kU32 = std::numeric_limits<uint32_t>::max();

constexpr std::array kInfo = {
    AttributeInfo{"durability", AttrKind::kEnum, AppliesTo::kBoth, false, "", 0, 0,
                  "none|write|dsync",
                  "When a produce is acknowledged: `none` in memory, `write` written to the "
                  "device, `dsync` written with RWF_DSYNC/FUA. Default: the layout's "
                  "storage.durability."},
    AttributeInfo{"retention_ms", AttrKind::kUint, AppliesTo::kStream, true, "ms", 0,
                  kMaxRetentionMs, "", "Streams: messages older than this go; 0 = no time bound."},
    AttributeInfo{"retention_bytes", AttrKind::kUint, AppliesTo::kStream, true, "bytes", 0,
                  kMaxRetentionBytes, "",
                  "Streams: per partition, the oldest messages go past this size; 0 = no bound."},
    AttributeInfo{"max_message_bytes", AttrKind::kUint, AppliesTo::kBoth, true, "bytes", 1,
                  kMaxMessageBytesCap, "", "Largest message accepted (at most 1 MiB)."},
    AttributeInfo{"visibility_timeout_ms", AttrKind::kUint, AppliesTo::kWork, true, "ms", 0,
                  kMaxVisibilityTimeoutMs, "",
                  "Work queues: lease of a received message when RECEIVE gives 0 (at most 12 h)."},
    AttributeInfo{"receive_wait_ms", AttrKind::kUint, AppliesTo::kWork, true, "ms", 0,
                  kMaxReceiveWaitMs, "",
                  "Work queues: long-poll wait when RECEIVE gives 0 (at most 20 s)."},
    AttributeInfo{"max_receive_count", AttrKind::kUint, AppliesTo::kWork, true, "", 0,
                  kMaxReceiveCountCap, "",
                  "Work queues: receives after which a message goes to dead_letter_queue (or is "
                  "dropped when there is none); 0 = never."},
    AttributeInfo{"dead_letter_queue", AttrKind::kString, AppliesTo::kWork, true, "", 0, 0, "",
                  "Work queues: an existing other work queue; needs max_receive_count >= 1."},
    AttributeInfo{"delay_ms", AttrKind::kUint, AppliesTo::kWork, true, "ms", 0, 0, "",
                  "Work queues: default delivery delay (at most the server's cap, 15 min by "
                  "default)."},
    AttributeInfo{"ttl_ms", AttrKind::kUint, AppliesTo::kWork, true, "ms", 0, kMaxTtlMs, "",
                  "Work queues: default time to live; 0 = none (at most 14 days)."},
    AttributeInfo{"priority_levels", AttrKind::kUint, AppliesTo::kWork, false, "", 1,
                  kMaxPriorityLevels, "",
                  "Work queues: priority levels, higher first (1..16, the engine's limit)."},
    AttributeInfo{"fifo", AttrKind::kBool, AppliesTo::kWork, false, "", 0, 0, "",
                  "Work queues: one leased message per message group at a time, in order."},
    AttributeInfo{"dedup_window_ms", AttrKind::kUint, AppliesTo::kBoth, true, "ms", 0,
                  kMaxDedupWindowMs, "",
                  "How long a dedup id is remembered; 0 = no dedup (at most 1 h; default 5 min)."},
    AttributeInfo{"content_dedup", AttrKind::kBool, AppliesTo::kBoth, true, "", 0, 0, "",
                  "A message sent without a dedup id is deduplicated by a 64-bit hash of its "
                  "payload within dedup_window_ms (a hash collision counts as a duplicate)."},
    AttributeInfo{"replication", AttrKind::kEnum, AppliesTo::kBoth, true, "", 0, 0, "async|sync",
                  "`async`: ack after local durability; `sync`: after the standby's too. "
                  "Default: the layout's replication.mode."},
    AttributeInfo{"replication_degrade", AttrKind::kEnum, AppliesTo::kBoth, true, "", 0, 0,
                  "deny|allow",
                  "Sync queues while the standby is down: `deny` refuses produces, `allow` acks "
                  "after local durability."},
};

const std::array<Access, kInfo.size()>& AccessTable() {
  static const std::array<Access, kInfo.size()> table = {
      SLUICE_ENUM_ACCESS(durability, kDurabilities),
      UintAccess<&QueueAttributes::retention_ms>(),
      UintAccess<&QueueAttributes::retention_bytes>(),
      UintAccess<&QueueAttributes::max_message_bytes>(),
      UintAccess<&QueueAttributes::visibility_timeout_ms>(),
      UintAccess<&QueueAttributes::receive_wait_ms>(),
      UintAccess<&QueueAttributes::max_receive_count>(),
      Access{[](const QueueAttributes& a) { return Json(a.dead_letter_queue); },
             [](QueueAttributes& a, const Json& v, std::string_view field) {
               return ReadString(v, field, &a.dead_letter_queue);
             },
             [](QueueAttributes& d, const QueueAttributes& s) {
               d.dead_letter_queue = s.dead_letter_queue;
             },
             nullptr},
      UintAccess<&QueueAttributes::delay_ms>(),
      UintAccess<&QueueAttributes::ttl_ms>(),
      UintAccess<&QueueAttributes::priority_levels>(),
      BoolAccess<&QueueAttributes::fifo>(),
      UintAccess<&QueueAttributes::dedup_window_ms>(),
      BoolAccess<&QueueAttributes::content_dedup>(),
      SLUICE_ENUM_ACCESS(replication, kReplicationModes),
      SLUICE_ENUM_ACCESS(replication_degrade, kDegrades),
  };
  return table;
}
#undef SLUICE_ENUM_ACCESS

size_t IndexOf(const AttributeInfo* info) { return static_cast<size_t>(info - kInfo.data()); }

bool Applies(const AttributeInfo& info, QueueType type) {
  switch (info.applies) {
    case AppliesTo::kBoth: return true;
    case AppliesTo::kWork: return type == QueueType::kWork;
    case AppliesTo::kStream: return type == QueueType::kStream;
  }
  return true;
}

std::string_view TypeWord(AppliesTo a) { return a == AppliesTo::kWork ? "work" : "stream"; }

absl::Status CheckBounds(const AttributeInfo& info, const Access& access,
                         const QueueAttributes& attrs, const MetaOptions& options) {
  if (info.kind != AttrKind::kUint) return absl::OkStatus();
  const uint64_t v = access.number(attrs);
  const uint64_t max = info.max != 0 ? info.max : std::min(options.max_delay_ms, kU32);
  if (v < info.min || v > max) {
    std::string unit = info.unit.empty() ? "" : absl::StrCat(" ", A(info.unit));
    return FieldError(AttrField(info.name),
                      absl::StrCat(A(info.name), " must be between ", info.min, " and ", max, unit,
                                   ", got ", v));
  }
  return absl::OkStatus();
}

absl::Status ReadAttributes(const Json& obj, std::string_view field, QueueAttributes* attrs,
                            std::vector<std::string>* seen) {
  if (!obj.is_object()) {
    return FieldError(field, absl::StrCat(A(field), " must be an object, got ", obj.type_name()));
  }
  for (const auto& [key, value] : obj.items()) {
    const AttributeInfo* info = FindAttribute(key);
    const std::string f = absl::StrCat(A(field), ".", key);
    if (info == nullptr) {
      return MakeError(absl::StatusCode::kInvalidArgument, errc::kUnknownField, f,
                       absl::StrCat("unknown attribute \"", key, "\""));
    }
    if (absl::Status st = AccessTable()[IndexOf(info)].set(*attrs, value, f); !st.ok()) return st;
    if (seen) seen->push_back(key);
  }
  return absl::OkStatus();
}

absl::Status UnknownField(std::string_view key) {
  return MakeError(absl::StatusCode::kInvalidArgument, errc::kUnknownField, key,
                   absl::StrCat("unknown field \"", A(key), "\""));
}

// The spec fields of a create request or a stored queue; `extra` handles the other keys.
template <typename Extra>
absl::StatusOr<QueueSpec> ReadSpec(const Json& body, const MetaOptions& options, Extra extra) {
  if (!body.is_object()) {
    return FieldError("", absl::StrCat("the request body must be a JSON object, got ",
                                       body.type_name()));
  }
  QueueSpec spec;
  spec.attributes = options.defaults;
  bool has_name = false, has_type = false;
  for (const auto& [key, value] : body.items()) {
    absl::Status st;
    if (key == "name") {
      st = ReadString(value, "name", &spec.name);
      has_name = true;
    } else if (key == "type") {
      st = ReadEnum(kQueueTypes, value, "type", &spec.type);
      has_type = true;
    } else if (key == "partitions") {
      uint64_t n = 0;
      st = ReadUint(value, "partitions", &n);
      if (st.ok() && (n < 1 || n > kMaxPartitions)) {
        st = FieldError("partitions", absl::StrCat("partitions must be between 1 and ",
                                                   kMaxPartitions, ", got ", n));
      }
      spec.partitions = static_cast<uint32_t>(n);
    } else if (key == "attributes") {
      st = ReadAttributes(value, "attributes", &spec.attributes, nullptr);
    } else {
      st = extra(key, value);
    }
    if (!st.ok()) return st;
  }
  if (!has_name) return FieldError("name", "name is required");
  if (!has_type) return FieldError("type", "type is required: \"stream\" or \"work\"");
  return spec;
}

uint64_t Multiplier(std::string_view suffix, std::string_view unit, bool* ok) {
  *ok = true;
  if (unit == "ms") {
    if (suffix.empty() || suffix == "ms") return 1;
    if (suffix == "s") return 1000;
    if (suffix == "m") return 60'000;
    if (suffix == "h") return 3'600'000;
    if (suffix == "d") return 86'400'000;
  } else if (unit == "bytes") {
    if (suffix.empty() || suffix == "B") return 1;
    if (suffix == "KiB") return 1ull << 10;
    if (suffix == "MiB") return 1ull << 20;
    if (suffix == "GiB") return 1ull << 30;
    if (suffix == "TiB") return 1ull << 40;
  } else if (suffix.empty()) {
    return 1;
  }
  *ok = false;
  return 0;
}

}  // namespace

std::span<const AttributeInfo> Attributes() { return kInfo; }

const AttributeInfo* FindAttribute(std::string_view name) {
  for (const AttributeInfo& info : kInfo) if (info.name == name) return &info;
  return nullptr;
}

std::string_view ToString(Degrade d) { return NameOf(kDegrades, d); }

MetaOptions MetaOptionsFromLayout(const hwconf::Layout& layout) {
  MetaOptions o;
  o.defaults.durability = layout.storage.durability;
  o.defaults.replication = layout.replication.mode;
  return o;
}

absl::Status ValidateName(std::string_view name) {
  auto ok_char = [](char c, bool first) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    return alnum || (!first && (c == '_' || c == '.' || c == '-'));
  };
  if (name.empty() || name.size() > kMaxNameBytes) {
    return FieldError("name", absl::StrCat("name must be 1 to ", kMaxNameBytes,
                                           " characters, got ", name.size()));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    if (!ok_char(name[i], i == 0)) {
      return FieldError("name", absl::StrCat("name \"", A(name),
                                             "\" must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}"));
    }
  }
  return absl::OkStatus();
}

absl::Status Validate(const QueueSpec& spec, const MetaOptions& options) {
  if (absl::Status st = ValidateName(spec.name); !st.ok()) return st;
  if (spec.partitions < 1 || spec.partitions > kMaxPartitions) {
    return FieldError("partitions", absl::StrCat("partitions must be between 1 and ",
                                                 kMaxPartitions, ", got ", spec.partitions));
  }
  const QueueAttributes& a = spec.attributes;
  for (size_t i = 0; i < kInfo.size(); ++i) {
    const AttributeInfo& info = kInfo[i];
    const Access& access = AccessTable()[i];
    if (absl::Status st = CheckBounds(info, access, a, options); !st.ok()) return st;
    if (!Applies(info, spec.type) && access.get(a) != access.get(options.defaults)) {
      return FieldError(AttrField(info.name),
                        absl::StrCat(A(info.name), " applies to ", A(TypeWord(info.applies)),
                                     " queues only"));
    }
  }
  if (!a.dead_letter_queue.empty()) {
    const std::string f = AttrField("dead_letter_queue");
    if (!ValidateName(a.dead_letter_queue).ok()) {
      return FieldError(f, absl::StrCat("dead_letter_queue \"", a.dead_letter_queue,
                                        "\" is not a queue name"));
    }
    if (a.dead_letter_queue == spec.name) {
      return FieldError(f, "dead_letter_queue cannot be the queue itself");
    }
    if (a.max_receive_count == 0) {
      return FieldError(AttrField("max_receive_count"),
                        "max_receive_count must be at least 1 when dead_letter_queue is set");
    }
  }
  if (a.content_dedup && a.dedup_window_ms == 0) {
    return FieldError(AttrField("content_dedup"),
                      "content_dedup needs a dedup window: dedup_window_ms must be at least 1");
  }
  if (a.fifo && a.priority_levels > 1) {
    return FieldError(AttrField("priority_levels"),
                      "fifo queues keep order per group: priority_levels must be 1");
  }
  return absl::OkStatus();
}

// ---- JSON -----------------------------------------------------------------------------------

Json AttributesToJson(const QueueAttributes& attrs, QueueType type, bool all) {
  Json out = Json::object();
  for (size_t i = 0; i < kInfo.size(); ++i) {
    if (all || Applies(kInfo[i], type)) {
      out[std::string(kInfo[i].name)] = AccessTable()[i].get(attrs);
    }
  }
  return out;
}

Json ToJson(const QueueSpec& spec) {
  return Json{{"name", spec.name},
              {"type", std::string(NameOf(kQueueTypes, spec.type))},
              {"partitions", spec.partitions},
              {"attributes", AttributesToJson(spec.attributes, spec.type, true)}};
}

Json ToJson(const QueueMeta& meta, bool all) {
  Json out = Json::object();
  out["name"] = meta.spec.name;
  out["id"] = meta.id;
  out["type"] = std::string(NameOf(kQueueTypes, meta.spec.type));
  out["partitions"] = meta.spec.partitions;
  out["attributes"] = AttributesToJson(meta.spec.attributes, meta.spec.type, all);
  out["created_at_ms"] = meta.created_at_ms;
  out["updated_at_ms"] = meta.updated_at_ms;
  out["purge_generation"] = meta.purge_generation;
  out["purged_at_ms"] = meta.purged_at_ms;
  return out;
}

absl::StatusOr<QueueSpec> SpecFromJson(const Json& body, const MetaOptions& options) {
  absl::StatusOr<QueueSpec> spec = ReadSpec(body, options, [](const std::string& key, const Json&) {
    if (key == "id" || key == "created_at_ms" || key == "updated_at_ms" ||
        key == "purge_generation" || key == "purged_at_ms") {
      return FieldError(key, absl::StrCat(key, " is set by the server"));
    }
    return UnknownField(key);
  });
  if (!spec.ok()) return spec.status();
  if (absl::Status st = Validate(*spec, options); !st.ok()) return st;
  return spec;
}

absl::StatusOr<QueueMeta> MetaFromJson(const Json& body, const MetaOptions& options) {
  QueueMeta meta;
  absl::StatusOr<QueueSpec> spec =
      ReadSpec(body, options, [&meta](const std::string& key, const Json& value) {
        uint64_t* target = key == "created_at_ms"      ? &meta.created_at_ms
                           : key == "updated_at_ms"    ? &meta.updated_at_ms
                           : key == "purge_generation" ? &meta.purge_generation
                           : key == "purged_at_ms"     ? &meta.purged_at_ms
                                                       : nullptr;
        if (key == "id") {
          uint64_t id = 0;
          absl::Status st = ReadUint(value, "id", &id);
          if (st.ok() && (id == 0 || id > kU32)) st = FieldError("id", "id out of range");
          meta.id = static_cast<uint32_t>(id);
          return st;
        }
        return target ? ReadUint(value, key, target) : UnknownField(key);
      });
  if (!spec.ok()) return spec.status();
  if (meta.id == 0) return FieldError("id", "id is required");
  meta.spec = std::move(*spec);
  return meta;
}

absl::StatusOr<AttributePatch> PatchFromJson(const Json& body) {
  if (!body.is_object()) {
    return FieldError("", absl::StrCat("the request body must be a JSON object, got ",
                                       body.type_name()));
  }
  AttributePatch patch;
  for (const auto& [key, value] : body.items()) {
    if (key != "attributes") {
      if (key == "name" || key == "type" || key == "partitions" || key == "id") {
        return MakeError(absl::StatusCode::kInvalidArgument, errc::kImmutable, key,
                         absl::StrCat(key, " cannot change; create another queue"));
      }
      return UnknownField(key);
    }
    if (absl::Status st = ReadAttributes(value, "attributes", &patch.values, &patch.fields);
        !st.ok()) {
      return st;
    }
  }
  if (!body.contains("attributes")) return FieldError("attributes", "attributes is required");
  return patch;
}

void ApplyPatch(const AttributePatch& patch, QueueAttributes* attrs) {
  for (const std::string& f : patch.fields) {
    const AttributeInfo* info = FindAttribute(f);
    if (info != nullptr) AccessTable()[IndexOf(info)].copy(*attrs, patch.values);
  }
}

bool SameAttribute(std::string_view name, const QueueAttributes& a, const QueueAttributes& b) {
  const AttributeInfo* info = FindAttribute(name);
  if (info == nullptr) return false;
  const Access& access = AccessTable()[IndexOf(info)];
  return access.get(a) == access.get(b);
}

std::string_view FirstDifference(const QueueAttributes& a, const QueueAttributes& b) {
  for (size_t i = 0; i < kInfo.size(); ++i) {
    if (AccessTable()[i].get(a) != AccessTable()[i].get(b)) return kInfo[i].name;
  }
  return "";
}

absl::StatusOr<Json> ParseAttributeValue(std::string_view name, std::string_view text) {
  const AttributeInfo* info = FindAttribute(name);
  const std::string field = AttrField(name);
  if (info == nullptr) {
    std::vector<std::string> names;
    for (const AttributeInfo& i : kInfo) names.emplace_back(i.name);
    return MakeError(absl::StatusCode::kInvalidArgument, errc::kUnknownField, field,
                     absl::StrCat("unknown attribute \"", A(name), "\"; known: ",
                                  absl::StrJoin(names, ", ")));
  }
  switch (info->kind) {
    case AttrKind::kBool:
      if (text == "true") return Json(true);
      if (text == "false") return Json(false);
      return FieldError(field, absl::StrCat(A(name), " must be true or false"));
    case AttrKind::kEnum:
    case AttrKind::kString: return Json(std::string(text));
    case AttrKind::kUint: break;
  }
  uint64_t n = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, n);
  bool ok = ec == std::errc() && p != text.data();
  const uint64_t mult = ok ? Multiplier(std::string_view(p, end - p), info->unit, &ok) : 0;
  if (!ok || (mult != 0 && n > std::numeric_limits<uint64_t>::max() / mult)) {
    const std::string_view hint = info->unit == "ms"      ? " (e.g. 500, 500ms, 30s, 5m, 12h, 7d)"
                                  : info->unit == "bytes" ? " (e.g. 512, 64KiB, 1MiB, 1GiB)"
                                                          : "";
    return FieldError(field, absl::StrCat(A(name), ": \"", A(text), "\" is not a number",
                                          A(hint)));
  }
  return Json(n * mult);
}

// ---- engine configuration ------------------------------------------------------------------

hwconf::QueueDecl ToQueueDecl(const QueueMeta& meta) {
  hwconf::QueueDecl d;
  d.name = meta.spec.name;
  d.type = meta.spec.type;
  d.partitions = meta.spec.partitions;
  d.visibility_timeout_ms = meta.spec.attributes.visibility_timeout_ms;
  d.max_message_bytes = meta.spec.attributes.max_message_bytes;
  d.max_receive_count = meta.spec.attributes.max_receive_count;
  d.dead_letter_queue = meta.spec.attributes.dead_letter_queue;
  return d;
}

QueueSpec SpecFromQueueDecl(const hwconf::QueueDecl& decl, const MetaOptions& options) {
  QueueSpec s;
  s.name = decl.name;
  s.type = decl.type;
  s.partitions = decl.partitions;
  s.attributes = options.defaults;
  s.attributes.max_message_bytes = decl.max_message_bytes;
  if (decl.type == QueueType::kWork) {
    s.attributes.visibility_timeout_ms = decl.visibility_timeout_ms;
    s.attributes.max_receive_count = decl.max_receive_count;
    s.attributes.dead_letter_queue = decl.dead_letter_queue;
  }
  return s;
}

}  // namespace sluice::control
