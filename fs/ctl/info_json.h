// fs/ctl/info_json.h: `pkfsctl info --json`, the "Key: value" lines of
// core::describe (and the daemon's own lines) as one JSON object with
// stable keys. The schema is in pkfsctl(8) (fs/ctl/pkfsctl.8.scd).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace pkfs::ctl {

using InfoLines = std::vector<std::pair<std::string, std::string>>;

// "Key: value\n" text (the daemon's kInfo reply) as pairs.
InfoLines parse_info_lines(const std::string& text);

// The JSON object, without a trailing newline.
std::string info_json(const InfoLines& lines);

}  // namespace pkfs::ctl
