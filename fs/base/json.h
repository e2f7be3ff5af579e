// fs/base/json.h: the JSON that `pkfsctl ... --json` and `fsck.pkfs --json`
// write for scripts.
//
// Owns: a small streaming writer (objects, arrays, strings, integers,
// booleans) and the one rule for text that may not be UTF-8. File names,
// labels and messages are arbitrary bytes on pkfs; JSON strings are Unicode.
// A valid UTF-8 string is written as itself (", \ and control characters
// escaped; nothing else). A string that is not valid UTF-8 is written with
// U+FFFD in place of each byte that does not decode, so it is still valid
// JSON and readable; fields that may hold such bytes (names, paths) then
// also get a "<key>_hex" field, the exact bytes in lowercase hex, which is
// present only in that case (Writer::text_field). Must not depend on anything
// in pkfs. Header-only: the tools include it, the daemon does not.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace pkfs::json {

// Length of the valid UTF-8 sequence at text[at] (1-4), or 0 if the bytes
// there are not one: overlong forms, surrogates (U+D800-DFFF) and values
// above U+10FFFF are invalid, as RFC 3629 says.
inline size_t utf8_sequence(std::string_view text, size_t at) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(at);
  if (lead < 0x80) return 1;
  size_t length;
  uint32_t value;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, value = lead & 0x1Fu;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, value = lead & 0x0Fu;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, value = lead & 0x07u;
  } else {
    return 0;
  }
  if (at + length > text.size()) return 0;
  for (size_t i = 1; i < length; i++) {
    if ((byte(at + i) & 0xC0u) != 0x80u) return 0;
    value = (value << 6) | (byte(at + i) & 0x3Fu);
  }
  if ((length == 3 && value < 0x800) || (length == 4 && value < 0x10000) || value > 0x10FFFF ||
      (value >= 0xD800 && value <= 0xDFFF)) {
    return 0;
  }
  return length;
}

inline bool valid_utf8(std::string_view text) {
  for (size_t at = 0; at < text.size();) {
    size_t length = utf8_sequence(text, at);
    if (length == 0) return false;
    at += length;
  }
  return true;
}

// `text` as a JSON string literal, quotes included (see the file comment).
inline std::string quote(std::string_view text) {
  std::string out = "\"";
  for (size_t at = 0; at < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[at]);
    size_t length = utf8_sequence(text, at);
    if (length == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      at++;
      continue;
    }
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out.append(text.substr(at, length));
    }
    at += length;
  }
  return out + "\"";
}

inline std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out += kDigits[static_cast<unsigned char>(c) >> 4];
    out += kDigits[static_cast<unsigned char>(c) & 0xF];
  }
  return out;
}

// Builds one JSON document (or one line of JSON lines) into a string. Calls
// must nest correctly; key() comes before each member's value.
class Writer {
 public:
  Writer& begin_object() { return open('{'); }
  Writer& end_object() { return close('}'); }
  Writer& begin_array() { return open('['); }
  Writer& end_array() { return close(']'); }
  Writer& key(std::string_view name) {
    separate();
    m_out += quote(name);
    m_out += ':';
    m_after_key = true;
    return *this;
  }
  Writer& string(std::string_view text) { return raw(quote(text)); }
  Writer& number(uint64_t value) { return raw(std::to_string(value)); }
  Writer& number(int64_t value) { return raw(std::to_string(value)); }
  Writer& number(uint32_t value) { return number(static_cast<uint64_t>(value)); }
  Writer& number(int value) { return number(static_cast<int64_t>(value)); }
  Writer& boolean(bool value) { return raw(value ? "true" : "false"); }
  Writer& null() { return raw("null"); }

  // key: text, and key_hex: the bytes when text is not valid UTF-8.
  Writer& text_field(std::string_view name, std::string_view text) {
    key(name).string(text);
    if (!valid_utf8(text)) key(std::string(name) + "_hex").string(hex(text));
    return *this;
  }

  const std::string& str() const { return m_out; }

 private:
  Writer& open(char bracket) {
    separate();
    m_out += bracket;
    m_first.push_back(true);
    return *this;
  }
  Writer& close(char bracket) {
    m_out += bracket;
    m_first.pop_back();
    return *this;
  }
  Writer& raw(std::string_view text) {
    separate();
    m_out += text;
    return *this;
  }
  // A comma before every member or element but the first.
  void separate() {
    if (m_after_key) {
      m_after_key = false;
      return;
    }
    if (m_first.empty()) return;
    if (!m_first.back()) m_out += ',';
    m_first.back() = false;
  }

  std::string m_out;
  std::vector<bool> m_first;  // per open container: nothing written in it yet
  bool m_after_key = false;
};

}  // namespace pkfs::json
