# frozen_string_literal: true

# The standard libraries the 0.5.2 gem loaded on require, which code written against it
# (and its own spec suite) uses without requiring them: Set, JSON, SecureRandom, Digest,
# TCPServer/Socket.
require "set"
require "json"
require "securerandom"
require "digest"
require "socket"
require_relative "ledger/version"
require_relative "ledger/native"
require_relative "ledger/errors"
require_relative "ledger/fact"
require_relative "ledger/access_path"
require_relative "ledger/file_backend"
require_relative "ledger/read_cache"
require_relative "ledger/ledger_store"
require_relative "ledger/schema_graph"
require_relative "ledger/derive"
require_relative "ledger/transaction"
require_relative "ledger/protocol"
require_relative "ledger/changefeed"
require_relative "ledger/retention"
require_relative "ledger/segmented"
require_relative "ledger/server"
require_relative "ledger/sync"
require_relative "ledger/verify"

module Igniter
  # An embedded, append-only, bitemporal fact ledger. See LedgerStore. (The module's real
  # name is Igniter::Store, the reference gem's; Igniter::Ledger is the same module.)
  module Ledger
    @hash_keys = :keep

    class << self
      # The hash_keys: every store made from now on (by .new, .open or .memory) gets
      # when it is not given one: :keep (default; type-faithful) or :symbolize (String
      # hash keys become Symbols at write time; see LedgerStore.new).
      attr_reader :hash_keys

      def hash_keys=(mode)
        mode = mode.to_sym if mode.is_a?(String)
        raise ArgumentError, "hash_keys must be :keep or :symbolize, got #{mode.inspect}" unless %i[keep symbolize].include?(mode)

        @hash_keys = mode
      end

      # An in-memory ledger.
      def memory
        LedgerStore.new
      end

      # A file-backed ledger (see LedgerStore.open).
      def open(path, **options, &block)
        LedgerStore.open(path, **options, &block)
      end

      # An AccessPath (see AccessPath#initialize for the keywords).
      def access_path(**options)
        AccessPath.new(**options)
      end
    end
  end
end
