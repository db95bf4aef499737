#include "protocol/codec.h"

#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <catch2/catch.hpp>

#include "base/error.h"

namespace miniinfer::protocol {

TEST_CASE("base64 round-trips every length and matches RFC 4648's examples", "[protocol]") {
  const std::string foobar = "foobar";
  const char* expected[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (size_t n = 0; n <= foobar.size(); ++n) {
    const std::span<const unsigned char> in(reinterpret_cast<const unsigned char*>(foobar.data()), n);
    CHECK(base64_encode(in) == expected[n]);
    const auto back = base64_decode(expected[n]);
    CHECK(std::string(back.begin(), back.end()) == foobar.substr(0, n));
  }
  CHECK_THROWS_AS(base64_decode("Zm9"), Error);
  CHECK_THROWS_AS(base64_decode("Zm*v"), Error);
}

TEST_CASE("a tensor decodes to the floats it encoded, and f16/bf16 widen exactly", "[protocol]") {
  const std::vector<float> x = {1.0f, -2.5f, 3.0e-20f, 4.0f};
  const Tensor t = decode_tensor(encode_tensor(x, {2, 2}), "t");
  CHECK(t.shape == std::vector<int>{2, 2});
  CHECK(t.data == x);
  // 1.0 and -2.0 as f16 (0x3c00, 0xc000) and bf16 (0x3f80, 0xc000)
  const nlohmann::json h = {{"dtype", "f16"},
                            {"shape", {2}},
                            {"data", base64_encode(std::vector<unsigned char>{0x00, 0x3c, 0x00, 0xc0})}};
  CHECK(decode_tensor(h, "h").data == std::vector<float>{1.0f, -2.0f});
  const nlohmann::json b = {{"dtype", "bf16"},
                            {"shape", {2}},
                            {"data", base64_encode(std::vector<unsigned char>{0x80, 0x3f, 0x00, 0xc0})}};
  CHECK(decode_tensor(b, "b").data == std::vector<float>{1.0f, -2.0f});
  nlohmann::json wrong = encode_tensor(x, {3});
  CHECK_THROWS_AS(decode_tensor(wrong, "w"), Error);
}

TEST_CASE("a trace record survives the wire", "[protocol]") {
  TraceRecord r;
  r.layer = 1, r.head = 0, r.kind = TraceKind::VRead, r.seq = 2, r.pos = 5, r.pass = Pass::Resume;
  r.data = {0.5f, 0.25f};
  const TraceRecord back = decode_record(encode_record(r));
  CHECK(back.layer == 1);
  CHECK(back.kind == TraceKind::VRead);
  CHECK(back.pass == Pass::Resume);
  CHECK(back.pos == 5);
  CHECK(back.data == r.data);
  CHECK(back.from_seq == -1);
}

TEST_CASE("every trace site has a name on the wire, and a final_ln row keeps where it came from", "[protocol]") {
  for (int k = 0; k <= static_cast<int>(TraceKind::FinalLn); ++k)
    CHECK(site_from_name(site_name(static_cast<TraceKind>(k))) == static_cast<TraceKind>(k));
  TraceRecord r;
  r.layer = 3, r.head = -1, r.kind = TraceKind::FinalLn, r.seq = 1, r.pos = 4;
  r.from_seq = 0, r.from_pos = 2, r.from_row = 2;
  r.data = {1.0f};
  const TraceRecord back = decode_record(encode_record(r));
  CHECK(back.kind == TraceKind::FinalLn);
  CHECK(back.from_seq == 0);
  CHECK(back.from_pos == 2);
  CHECK(back.from_row == 2);
}

TEST_CASE("base64 decodes what it encoded, at every length", "[protocol]") {
  rc::prop("base64_decode(base64_encode(bytes)) == bytes", [](const std::vector<unsigned char>& bytes) {
    RC_ASSERT(base64_decode(base64_encode(bytes)) == bytes);
  });
  CHECK_THROWS_WITH(base64_decode("Zm9vZm*vYmFy"), "base64: bad character at offset 6");
  CHECK_THROWS_WITH(base64_decode("Zm=vYmFy"), "base64: bad character at offset 2");
  CHECK_THROWS_WITH(base64_decode("Zm9vYm=y"), "base64: bad character at offset 6");
}

// A reply line as an engine writes one: short fields around a long base64 string, with any
// text in one field and the line cut anywhere (so most of them are not JSON).
TEST_CASE("parse_line reads a line as json::parse does, and dump_line writes json::dump's bytes",
          "[protocol]") {
  rc::prop(
      "parse_line(line) == json::parse(line), dump_line(j) == j.dump()",
      [](const std::string& text, const std::vector<unsigned char>& bytes, bool as_key, size_t cut_at) {
        const std::string data = base64_encode(bytes) + std::string(130, 'A');  // long
        const nlohmann::json j = {{"re", 3}, {"logits", {{"dtype", "f32"}, {"data", data}}}, {"note", text}};
        // Both refuse a string that is not UTF-8 alike.
        auto dumped = [&](auto dump) -> std::string {
          try {
            return dump();
          } catch (const nlohmann::json::exception& e) {
            return std::string("refused: ") + e.what();
          }
        };
        RC_ASSERT(dumped([&] { return dump_line(j); }) == dumped([&] { return j.dump(); }));
        const std::string dump = dumped([&] { return j.dump(); });
        std::string line = as_key ? fmt::format("{{\"{}\": {}, \"x\": \"{}\"}}", data, dump, text) : dump;
        if (cut_at % 3 == 0) line = line.substr(0, cut_at % (line.size() + 1));
        const nlohmann::json a = parse_line(line), b = nlohmann::json::parse(line, nullptr, false);
        RC_ASSERT(a.is_discarded() == b.is_discarded());
        if (!b.is_discarded()) RC_ASSERT(a == b);
      });
  const std::string data(300, 'A');
  CHECK(parse_line("{\"data\":\"" + data + "\"}") == nlohmann::json{{"data", data}});
  CHECK(parse_line("{\"data\":\"" + data + "\u0001\"}").is_discarded());  // a raw control character
  CHECK(parse_line("{\"data\":\"" + data + "\"").is_discarded());
  CHECK(dump_line({{"s", "caf\u00e9 \"q\"\n"}, {"n", -1.5}, {"a", {1, nullptr, true}}}) ==
        nlohmann::json({{"s", "caf\u00e9 \"q\"\n"}, {"n", -1.5}, {"a", {1, nullptr, true}}}).dump());
}

}  // namespace miniinfer::protocol
