#pragma once

// Header-only, for targets that use Boost.Beast (they link Boost::headers).
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>

namespace ferry {

// A blocking socket as Beast's SyncReadStream and SyncWriteStream, every call bounded by a deadline (poll
// before each read and write). Asio's own blocking sockets would wait without limit.
class DeadlineStream {
 public:
  DeadlineStream(int fd, std::chrono::steady_clock::time_point deadline) : fd_(fd), deadline_(deadline) {}

  template <typename MutableBuffers>
  std::size_t read_some(MutableBuffers const& buffers, boost::beast::error_code& ec) {
    auto buf = *boost::asio::buffer_sequence_begin(buffers);
    if (!Wait(POLLIN, ec)) return 0;
    ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) ec.assign(errno, boost::beast::system_category());
    if (n == 0 && buf.size() > 0) ec = boost::asio::error::eof;
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  template <typename ConstBuffers>
  std::size_t write_some(ConstBuffers const& buffers, boost::beast::error_code& ec) {
    std::vector<iovec> iov;
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::const_buffer b = *it;
      iov.push_back({const_cast<void*>(b.data()), b.size()});
    }
    if (!Wait(POLLOUT, ec)) return 0;
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iov.size();
    ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) ec.assign(errno, boost::beast::system_category());
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  // The throwing forms the stream concepts ask for; Ferry uses the ones above.
  template <typename MutableBuffers>
  std::size_t read_some(MutableBuffers const& buffers) {
    boost::beast::error_code ec;
    std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::beast::system_error(ec);
    return n;
  }
  template <typename ConstBuffers>
  std::size_t write_some(ConstBuffers const& buffers) {
    boost::beast::error_code ec;
    std::size_t n = write_some(buffers, ec);
    if (ec) throw boost::beast::system_error(ec);
    return n;
  }

 private:
  bool Wait(short events, boost::beast::error_code& ec) {
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - std::chrono::steady_clock::now()).count();
      if (left <= 0) {
        ec = boost::beast::error::timeout;
        return false;
      }
      pollfd p{fd_, events, 0};
      int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) {
        ec.assign(errno, boost::beast::system_category());
        return false;
      }
    }
  }

  int fd_;
  std::chrono::steady_clock::time_point deadline_;
};

}  // namespace ferry
