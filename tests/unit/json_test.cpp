// Unit tests for fs/base/json.h: escaping, UTF-8 validation, and the
// replacement of bytes that are not UTF-8 (with the exact bytes in hex).
#include "fs/base/json.h"

#include <catch2/catch.hpp>
#include <string>

using namespace pkfs;

TEST_CASE("json: strings are escaped as JSON requires", "[json]") {
  CHECK(json::quote("plain") == "\"plain\"");
  CHECK(json::quote("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(json::quote(std::string("\n\t\x01\x1f\x7f", 5)) == "\"\\n\\t\\u0001\\u001f\\u007f\"");
  CHECK(json::quote(std::string("a\0b", 3)) == "\"a\\u0000b\"");
  CHECK(json::quote("gr\xC3\xBC\xC3\x9F \xE2\x82\xAC \xF0\x9F\x98\x80") ==
        "\"gr\xC3\xBC\xC3\x9F \xE2\x82\xAC \xF0\x9F\x98\x80\"");
}

TEST_CASE("json: bytes that are not UTF-8 become U+FFFD, one per byte", "[json]") {
  const std::string fffd = "\xEF\xBF\xBD";
  CHECK(json::quote("a\xFF"
                    "b") == "\"a" + fffd + "b\"");
  CHECK(json::quote("\xC0\xAF") == "\"" + fffd + fffd + "\"");                        // overlong '/'
  CHECK(json::quote("\xED\xA0\x80") == "\"" + fffd + fffd + fffd + "\"");             // a surrogate
  CHECK(json::quote("\xF4\x90\x80\x80") == "\"" + fffd + fffd + fffd + fffd + "\"");  // above U+10FFFF
  CHECK(json::quote("\xE2\x82") == "\"" + fffd + fffd + "\"");                        // cut short
  CHECK(json::valid_utf8("\xF4\x8F\xBF\xBF"));
  CHECK_FALSE(json::valid_utf8("\xF8\x88\x80\x80\x80"));
}

TEST_CASE("json: the writer separates members and adds _hex only when needed", "[json]") {
  json::Writer out;
  out.begin_object().key("a").number(uint64_t{18446744073709551615u}).key("b").begin_array();
  out.number(-1).boolean(true).null().begin_object().end_object().end_array();
  out.text_field("name", "ok").text_field("odd", "x\xFE").end_object();
  CHECK(out.str() ==
        "{\"a\":18446744073709551615,\"b\":[-1,true,null,{}],\"name\":\"ok\",\"odd\":\"x\xEF\xBF\xBD\","
        "\"odd_hex\":\"78fe\"}");
}
