#pragma once

// The persistence protocol: atoms and the in-process types its messages carry.
// Included only by .cpp files that talk to the persistence actors.

#include "persistence/records.hpp"
#include "persistence/store.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/message.hpp>

#include <functional>

namespace parley {

using write_atom = caf::atom_constant<caf::atom("write")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
/// The writer's own batch timer (no reply, unlike an external flush).
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using purge_atom = caf::atom_constant<caf::atom("purge")>;
using read_atom = caf::atom_constant<caf::atom("read")>;
using ok_atom = caf::atom_constant<caf::atom("ok")>;

/// A read to run on a reader's connection; its result is the response message.
/// It may throw store_error, which the reader turns into an error response.
using read_job = std::function<caf::message(store&)>;

/// A read that answers its requester itself, so no response message travels
/// back: `run` on a reader's connection; a store_error it throws goes to `fail`.
class read_request {
 public:
  virtual ~read_request() = default;
  virtual void run(store& db) = 0;
  virtual void fail(failure why) = 0;
};

}  // namespace parley

// Write sets and read jobs only travel between actors of one process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::write_set)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::read_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<parley::read_request>)
