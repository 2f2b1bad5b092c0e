// A tiny blocking HTTP/1.1 client (Beast) for the server tests: loopback only.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>
#include <string>
#include <vector>

namespace vlserve::server::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct Response {
  int status = 0;
  std::string body;
  std::string content_type;
  std::string retry_after;
  std::string allow;  // the Allow header (405)
  bool ok = false;  // transport succeeded
};

class Client {
 public:
  explicit Client(int port) : socket_(ioc_) {
    boost::system::error_code ec;
    socket_.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)}, ec);
    connected_ = !ec;
  }
  bool connected() const { return connected_; }
  asio::ip::tcp::socket& socket() { return socket_; }

  Response Send(http::verb method, const std::string& target, const std::string& body = "",
                const std::string& api_key = "test-key") {
    Response r;
    if (!connected_) return r;
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!api_key.empty()) req.set(http::field::authorization, "Bearer " + api_key);
    if (!body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    boost::system::error_code ec;
    http::write(socket_, req, ec);  // on failure (e.g. 413 mid-body) still read the answer
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    boost::system::error_code read_ec;
    http::read(socket_, buffer_, parser, read_ec);
    if (read_ec) return r;
    auto& res = parser.get();
    r.status = res.result_int();
    r.body = res.body();
    r.content_type = std::string(res[http::field::content_type]);
    r.retry_after = std::string(res["Retry-After"]);
    r.allow = std::string(res[http::field::allow]);
    r.ok = true;
    return r;
  }
  Response Post(const std::string& target, const std::string& body,
                const std::string& api_key = "test-key") {
    return Send(http::verb::post, target, body, api_key);
  }
  Response Get(const std::string& target, const std::string& api_key = "test-key") {
    return Send(http::verb::get, target, "", api_key);
  }

 private:
  asio::io_context ioc_;
  asio::ip::tcp::socket socket_;
  beast::flat_buffer buffer_;
  bool connected_ = false;
};

// SSE body -> the JSON payloads of its "data:" records; [DONE] becomes the string "[DONE]".
inline std::vector<std::string> SseRecords(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) {
      out.push_back("<unterminated>" + body.substr(pos));
      break;
    }
    std::string record = body.substr(pos, end - pos);
    if (record.rfind("data: ", 0) == 0) {
      out.push_back(record.substr(6));
    } else {
      out.push_back("<bad>" + record);
    }
    pos = end + 2;
  }
  return out;
}

}  // namespace vlserve::server::testing
