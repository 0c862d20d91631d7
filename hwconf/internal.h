// Private to hwconf/: what the parser (settings.cc), the rule checker (validate.cc) and the loader
// (loader.cc) share. Nothing outside hwconf/ includes this; it pulls in toml11.
#pragma once

// The root meson.build passes -DTOML11_COLORIZE_ERROR_MESSAGE=0, but toml11 3.7 tests the macro
// with #ifdef, so any definition turns ANSI colours ON in its messages. Layout errors are read in
// logs and compared in tests: keep them plain.
#undef TOML11_COLORIZE_ERROR_MESSAGE
#include <toml.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "hwconf/layout.h"

namespace sluice::hwconf::internal {

// ---- std::string_view with Debian's Abseil --------------------------------------------------
// Debian 12 builds Abseil with its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0),
// which does not convert from std::string_view. hwconf's API speaks std::string_view, so string
// building goes through these: Cat/Append are absl::StrCat/StrAppend that also take it.
inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
template <typename T>
const T& Piece(const T& v) { return v; }
inline absl::string_view Piece(std::string_view s) { return AV(s); }

template <typename... Args>
std::string Cat(const Args&... args) { return absl::StrCat(Piece(args)...); }
template <typename... Args>
void Append(std::string* out, const Args&... args) { absl::StrAppend(out, Piece(args)...); }

// Splits at every `sep`, keeping empty pieces; the pieces point into `s`.
std::vector<std::string_view> Split(std::string_view s, char sep);
// Digits only (no sign, no space), and the value fits: the strict reading a config file wants.
bool ParseDecimal(std::string_view s, uint32_t* out);
bool ParseHex(std::string_view s, uint32_t* out);

// Tables keep their keys sorted, so iteration (and the order of errors on one line) is stable.
using TomlValue = toml::basic_value<toml::discard_comments, std::map, std::vector>;

// The line each key path ("port[0].ipv4", "lcore[1].shards[0]") was written on. A path that was
// not written (its default applies) falls back to the nearest enclosing table that was, so that a
// rule about a defaulted value still points at the right [[port]] or [storage].
class SourceMap {
 public:
  void Record(const std::string& path, int line) { lines_[path] = line; }
  bool Has(std::string_view path) const { return lines_.find(path) != lines_.end(); }
  int Line(std::string_view path) const;  // 0 when nothing enclosing was written either

 private:
  std::map<std::string, int, std::less<>> lines_;
};

// Collects errors as "FILE:LINE: key 'PATH': REASON" and turns them into one status.
class Diagnostics {
 public:
  static constexpr size_t kMaxErrors = 50;  // a wrong file can produce hundreds; the first 50 do

  explicit Diagnostics(std::string_view file) : file_(file) {}
  void Error(int line, std::string_view key, std::string_view reason);
  void Syntax(int line, std::string_view message);  // a TOML syntax error: no key to name
  bool ok() const { return errors_.empty(); }
  absl::Status ToStatus() const;  // InvalidArgumentError, one line per error, by line in the file

 private:
  struct Entry {
    int line;
    std::string text;
  };
  std::string file_;
  std::vector<Entry> errors_;
  size_t dropped_ = 0;
};

struct ParseContext {
  Diagnostics& diag;
  SourceMap& where;

  void Error(const TomlValue& v, std::string_view key, std::string_view reason) {
    diag.Error(static_cast<int>(v.location().line()), key, reason);
  }
};

// settings.cc: reads `root` into `out` following the settings table; reports unknown keys, wrong
// types, out-of-range and malformed values. Records where every key was written.
void ParseLayout(const TomlValue& root, ParseContext& ctx, Layout& out);

// validate.cc: the rules that involve more than one key (ownership, references, limits between
// settings). Resolves eal.main_lcore = -1.
void ValidateLayout(const SourceMap& where, Diagnostics& diag, Layout& layout);

// Value formats shared by the parser and the rules. Each returns "" when `s` is fine, else why not.
std::string CheckIpv4(std::string_view s);
std::string CheckHostPort(std::string_view s);  // "a.b.c.d:port"
std::string CheckName(std::string_view s);      // port and queue names
std::string CheckPci(std::string_view s);       // [DDDD:]BB:DD.F, hexadecimal
std::string CheckVdev(std::string_view s);      // net_<driver><n>[,key=value...]

// Canonical forms used to spot the same device written twice.
std::string NormalizePci(std::string_view s);     // lower case, with the 0000: domain
std::string_view VdevName(std::string_view vdev); // the part before the first comma

constexpr bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace sluice::hwconf::internal
