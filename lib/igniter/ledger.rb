# frozen_string_literal: true

require_relative "ledger/version"
require_relative "ledger/native"
require_relative "ledger/errors"
require_relative "ledger/fact"
require_relative "ledger/access_path"
require_relative "ledger/file_backend"
require_relative "ledger/ledger_store"
require_relative "ledger/transaction"
require_relative "ledger/protocol"
require_relative "ledger/changefeed"

module Igniter
  # An embedded, append-only, bitemporal fact ledger. See LedgerStore.
  module Ledger
    # 0.5.x name of LedgerStore.
    IgniterStore = LedgerStore

    class << self
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

      private

      # `term:` is the 0.5.x name of `valid_time:`.
      def merge_valid_time(valid_time, term)
        return term if valid_time.nil?
        return valid_time if term.nil? || term == valid_time

        raise ArgumentError, "valid_time: #{valid_time.inspect} and term: #{term.inspect} disagree (term is an alias)"
      end
    end
  end

  # The package's name before the rename to igniter-ledger.
  Store = Ledger unless const_defined?(:Store, false)
end
