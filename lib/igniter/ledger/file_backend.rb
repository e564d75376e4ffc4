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
    class FileBackend
      SNAPSHOT_SUFFIX = ".snap"

      attr_reader :path, :durability, :recover

      def initialize(path, durability: :fsync, recover: false)
        @path = path.respond_to?(:to_path) ? path.to_path : String(path)
        @durability = durability
        @recover = recover
        freeze
      end

      def snapshot_path
        "#{path}#{SNAPSHOT_SUFFIX}"
      end
    end
  end
end
