# frozen_string_literal: true

module Igniter
  module Ledger
    # Collects writes and appends for one atomic commit (see LedgerStore#transaction).
    # Nothing is written until the block returns; then all operations become visible at
    # once, and after a crash either all or none are present. `expected:` checks see the
    # earlier operations of the same transaction.
    #
    # A native object holding the core's batch: each call converts its arguments at once,
    # so a refused argument raises here, at the caller's line ("batch operation N: ...").
    # #size and #empty? are native too.
    class Transaction
      # Queues a write (the keywords of LedgerStore#write); returns its position in the
      # transaction's result array.
      def write(store:, key:, value:, schema_version: 1, causation: nil, valid_time: nil, term: nil,
                producer: nil, derivation: nil, expected: LedgerStore::UNSET)
        if LedgerStore::UNSET.equal?(expected)
          _write(store, key, value, schema_version, causation, valid_time, term, producer, derivation)
        else
          _write(store, key, value, schema_version, causation, valid_time, term, producer, derivation, expected)
        end
      end

      # Queues an append (the keywords of LedgerStore#append); returns its position in the
      # transaction's result array.
      def append(history:, event:, partition_key: nil, schema_version: 1, causation: nil,
                 valid_time: nil, term: nil, producer: nil, derivation: nil)
        _append(history, event, partition_key, schema_version, causation, valid_time, term, producer, derivation)
      end
    end
  end
end
