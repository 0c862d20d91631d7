// LoadLayout: TOML text -> parsed against the settings table (settings.cc) -> cross-key rules
// (validate.cc) -> Layout. Every problem becomes one "FILE:LINE: key 'PATH': REASON" line.
#include "hwconf/loader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hwconf/internal.h"

namespace sluice::hwconf {
namespace internal {

int SourceMap::Line(std::string_view path) const {
  // "lcore[1].shards[0]" -> "lcore[1].shards" -> "lcore[1]" -> "lcore".
  while (!path.empty()) {
    if (auto it = lines_.find(path); it != lines_.end()) return it->second;
    const size_t cut = path.find_last_of(".[");
    if (cut == std::string_view::npos) break;
    path = path.substr(0, cut);
  }
  return 0;
}

void Diagnostics::Error(int line, std::string_view key, std::string_view reason) {
  if (errors_.size() == kMaxErrors) {
    ++dropped_;
    return;
  }
  const std::string where = line > 0 ? Cat(file_, ":", line) : file_;
  errors_.push_back({line, Cat(where, ": key '", key, "': ", reason)});
}

void Diagnostics::Syntax(int line, std::string_view message) {
  errors_.push_back({line, Cat(file_, ":", line, ": TOML syntax error: ", message)});
}

absl::Status Diagnostics::ToStatus() const {
  if (errors_.empty()) return absl::OkStatus();
  std::vector<Entry> sorted = errors_;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Entry& a, const Entry& b) { return a.line < b.line; });
  std::string text = absl::StrJoin(sorted, "\n", [](std::string* o, const Entry& e) {
    o->append(e.text);
  });
  if (dropped_ > 0) Append(&text, "\n(", dropped_, " more errors not shown)");
  return absl::InvalidArgumentError(text);
}

namespace {

// toml11's message is "[error] toml::parse_xxx: WHAT\n --> FILE\n   |\n 3 | text\n   |  ^--- hint".
// Keep WHAT and the excerpt with its caret; drop the parser function's name and the file line,
// which our own "FILE:LINE:" prefix already says.
std::string SyntaxMessage(std::string_view what) {
  std::vector<std::string_view> lines = Split(what, '\n');
  std::string_view head = lines[0];
  if (head.starts_with("[error] ")) head.remove_prefix(8);
  if (head.starts_with("toml::")) {
    if (size_t colon = head.find(": "); colon != std::string_view::npos) head.remove_prefix(colon + 2);
  }
  std::string out(head);
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].starts_with(" --> ")) continue;
    Append(&out, "\n", lines[i]);
  }
  return out;
}

}  // namespace
}  // namespace internal

absl::StatusOr<Layout> LoadLayoutFromString(std::string_view toml, std::string_view name) {
  internal::Diagnostics diag(name);
  internal::TomlValue root;
  try {
    std::istringstream in{std::string(toml)};
    root = toml::parse<toml::discard_comments, std::map, std::vector>(in, std::string(name));
  } catch (const toml::exception& e) {
    diag.Syntax(static_cast<int>(e.location().line()), internal::SyntaxMessage(e.what()));
    return diag.ToStatus();
  } catch (const std::exception& e) {  // toml11 can also throw std::out_of_range and friends
    diag.Syntax(1, e.what());
    return diag.ToStatus();
  }

  Layout layout;
  layout.source = std::string(name);
  internal::SourceMap where;
  internal::ParseContext ctx{diag, where};
  internal::ParseLayout(root, ctx, layout);
  // The rules compare values with each other: on a layout with unparsed values they would only
  // add noise to the errors that matter.
  if (!diag.ok()) return diag.ToStatus();
  internal::ValidateLayout(where, diag, layout);
  if (!diag.ok()) return diag.ToStatus();
  return layout;
}

absl::StatusOr<Layout> LoadLayout(const std::string& path) {
  // A layout is a few KiB; anything near this is not a layout (a core file, a log).
  constexpr std::streamoff kMaxBytes = 1 << 20;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(internal::Cat(path, ": cannot open: ", std::strerror(errno)));
  std::string text;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (static_cast<std::streamoff>(text.size()) > kMaxBytes) {
      return absl::InvalidArgumentError(
          internal::Cat(path, ": larger than ", kMaxBytes, " bytes: not a layout file"));
    }
  }
  if (in.bad()) return absl::NotFoundError(internal::Cat(path, ": read error: ", std::strerror(errno)));
  return LoadLayoutFromString(text, path);
}

}  // namespace sluice::hwconf
