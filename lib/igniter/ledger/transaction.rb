# frozen_string_literal: true

module Igniter
  module Ledger
    # Collects writes and appends for one atomic commit (see LedgerStore#transaction).
    # Nothing is written until the block returns; then all operations become visible at
    # once, and after a crash either all or none are present. `expected:` checks see the
    # earlier operations of the same transaction.
    class Transaction
      def initialize
        @ops = []
      end

      # Queues a write; returns its position in the transaction's result array.
      def write(store:, key:, value:, schema_version: 1, causation: nil, valid_time: nil, term: nil,
                producer: nil, derivation: nil, expected: LedgerStore::UNSET)
        @ops << [:write, store, key, value, schema_version, causation,
                 term.nil? ? valid_time : Ledger.__send__(:merge_valid_time, valid_time, term), producer, derivation,
                 LedgerStore::UNSET.equal?(expected) ? false : expected]
        @ops.size - 1
      end

      # Queues an append; returns its position in the transaction's result array.
      def append(history:, event:, partition_key: nil, schema_version: 1, causation: nil,
                 valid_time: nil, term: nil, producer: nil, derivation: nil)
        @ops << [:append, history, event, partition_key, schema_version, causation,
                 term.nil? ? valid_time : Ledger.__send__(:merge_valid_time, valid_time, term), producer, derivation]
        @ops.size - 1
      end

      def size
        @ops.size
      end

      def empty?
        @ops.empty?
      end

      # The queued operations (internal form).
      def operations
        @ops
      end
    end
  end
end
