#pragma once

// Include this instead of Boost.Asio/Beast directly: Boost 1.74's awaitable.hpp uses
// std::exchange without including <utility>, which GCC 12 in C++20 rejects.
#include <utility>

#include <boost/asio.hpp>
