# frozen_string_literal: true

module Igniter
  module Ledger
    # Where a file-backed store keeps its facts: the WAL at `path`, the snapshot at
    # `path + SNAPSHOT_SUFFIX`. Pass it as `LedgerStore.new(backend: FileBackend.new(path))`
    # (the same as `LedgerStore.open(path)`).
    #
    # durability: :fsync (default; a write returns once it is on stable storage),
    # :flush (one write(2) per commit: survives a process crash, not power loss — the
    # 0.5.x FileBackend's behaviour) or :none (buffered; written on close/checkpoint).
    #
    # Used on its own, it answers the 0.5.x backend calls — write_fact, replay,
    # write_snapshot, close — through a ledger it opens on first use (this gem's WAL
    # format; a 0.5.x JSON WAL opens too).
    class FileBackend
      SNAPSHOT_SUFFIX = ".snap"

      attr_reader :path, :durability, :recover

      def initialize(path, durability: :fsync, recover: false)
        @path = path.respond_to?(:to_path) ? path.to_path : String(path)
        @durability = durability
        @recover = recover
        @opened = { ledger: nil, lock: Mutex.new }
        freeze
      end

      def snapshot_path
        "#{path}#{SNAPSHOT_SUFFIX}"
      end

      # Appends a fact (keeping its id, times and causation; see LedgerStore#replay).
      def write_fact(fact)
        ledger.__send__(:replay, fact)
        nil
      end

      # Every fact in the file, in commit order.
      def replay
        ledger.fact_log_all
      end

      # Writes a snapshot of everything in the file (the facts argument of the 0.5.x call
      # is what the file already holds: they were written through write_fact).
      def write_snapshot(_facts = nil)
        ledger.checkpoint
        nil
      end

      def close
        l = @opened[:lock].synchronize { @opened.delete(:ledger) }
        l&.close
        nil
      end

      private

      def ledger
        @opened[:lock].synchronize do
          @opened[:ledger] ||= LedgerStore.open(path, durability: durability, recover: recover)
        end
      end
    end
  end
end
