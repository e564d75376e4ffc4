# frozen_string_literal: true

module Igniter
  module Ledger
    # The exception classes of the sync hub are defined by the native extension:
    #
    #   SyncError < Igniter::Ledger::Error         the sync failed (the hub refused, state dir)
    #     HubUnreachableError                      the hub did not answer within connect_timeout:
    #   SyncArgumentError < ArgumentError          a malformed argument (e.g. hub: not a URL)
    #
    # Each names the keyword at fault in #argument (a Symbol, e.g. :hub).
    class SyncError
      attr_reader :argument
    end

    class SyncArgumentError
      include Error::Tag
      attr_reader :argument
    end

    # A running sync of one store with a PostgreSQL hub (see LedgerStore#start_sync).
    #
    # The push and pull loops run on Rust threads (with their own tokio runtime); pulled
    # facts are committed by a Ruby thread of this handle through the store's normal commit
    # path, so consumers, derivations and the backend: object see them as any write.
    class SyncHandle
      # The store synced.
      attr_reader :store

      # Use LedgerStore#start_sync.
      def initialize(store, native)
        @store = store
        @native = native
        @errors = []
        @lock = Mutex.new
        @applier = Thread.new { apply_loop }
        @applier.name = "igniter-sync-apply" if @applier.respond_to?(:name=)
        @applier.report_on_exception = false
      end

      # This node's id (a UUID String): the origin_ledger of the rows it pushes.
      def node
        @native.node
      end

      # The counters and cursors, a frozen Hash: running, node, pushed, push_cursor (the
      # last ledger sequence in the hub), pulled, pull_cursor (the last hub sequence taken
      # in), bootstrapped, reconnects, last_error (String or nil).
      def status
        h = JSON.parse(@native.status_json, symbolize_names: true)
        applier_error = @lock.synchronize { @errors.last }
        h[:last_error] ||= applier_error&.message
        h.each_value(&:freeze)
        h.freeze
      end

      # True while the sync runs.
      def running?
        @native.running?
      end

      # Stops the sync: the loops end after their current step (a hub transaction commits
      # or rolls back whole), what the store holds is pushed first (up to flush_timeout:),
      # every pulled batch is committed, and the cursors are durable: a later start_sync
      # resumes where this one stopped, without duplicates. Answers the final status.
      # Idempotent.
      def stop
        begin
          @native._stop
        ensure
          @applier.join
          Sync.forget(self)
        end
        status
      end

      def inspect
        "#<#{self.class.name} node=#{node} running=#{running?}>"
      end

      private

      def apply_loop
        loop do
          begin
            break if @store.__send__(:_serve_sync, @native, 0.2).nil?
          rescue StandardError => e
            # The pull thread was told; keep serving until the sync ends.
            @lock.synchronize { @errors << e }
          end
        end
      end
    end

    # The running syncs, stopped at exit and before their store closes.
    module Sync
      @handles = []
      @lock = Mutex.new

      class << self
        def track(handle)
          @lock.synchronize { @handles << handle }
        end

        def forget(handle)
          @lock.synchronize { @handles.delete(handle) }
        end

        def of(store)
          @lock.synchronize { @handles.select { |h| h.store.equal?(store) } }
        end

        def stop_all
          @lock.synchronize { @handles.dup }.each do |h|
            h.stop
          rescue StandardError
            nil
          end
        end
      end

      # Stops a store's syncs before it closes (so the last facts are pushed and pulled
      # batches are committed before the ledger goes away).
      module StopOnClose
        def close(*args, **kw, &block)
          Sync.of(self).each do |h|
            h.stop
          rescue StandardError
            nil
          end
          super
        end
      end
    end

    class LedgerStore
      prepend Sync::StopOnClose

      # Starts syncing this store with a PostgreSQL hub; answers a SyncHandle.
      #
      #   hub:             a connection string, postgres://user@host:port/db (its schema is
      #                    created if the database is empty)
      #   push:            push this store's facts (from the cursor kept in the hub; a first
      #                    push starts at the first fact)
      #   pull:            pull these stores (Array of Symbols/Strings; [] or :all: every
      #                    store; nil: do not pull). The pull cursor is kept in state_dir:.
      #   bootstrap:       pull the whole subscription before returning (a progress bar on
      #                    a terminal), then follow it; true without pull: takes every store
      #   origins:         pull only rows pushed by these nodes (UUID Strings)
      #   since:, until:   pull only facts with an origin transaction time in this window
      #                    (Time or Unix seconds)
      #   state_dir:       the node id, pull cursors and provenance (default: PATH.sync
      #                    beside a file store; in memory for a memory store, so a memory
      #                    store is a new node at each start)
      #   connect_timeout: seconds to wait for the hub before raising HubUnreachableError
      #                    (default 10; nil: do not wait, the loops retry until it answers)
      #   flush_timeout:   seconds #stop keeps pushing what is left (default 5)
      #   batch_size:      facts per push transaction and rows per pull batch (default 1000)
      #   poll_interval:   the longest idle wait between looks at the hub (default 1.0;
      #                    LISTEN/NOTIFY wakes earlier)
      #
      # Raises SyncArgumentError (an ArgumentError) for a malformed argument and
      # HubUnreachableError (a SyncError) when the hub does not answer; both name the
      # keyword in #argument.
      def start_sync(hub:, push: true, pull: nil, bootstrap: false, origins: nil, since: nil, until: nil,
                     state_dir: nil, connect_timeout: 10, flush_timeout: 5, batch_size: nil, poll_interval: nil,
                     verbose: false)
        pull = [] if pull == :all || pull == true
        pull = nil if pull == false
        bad = ->(arg, msg) { raise SyncArgumentError.new("#{arg}: #{msg}").tap { |e| e.instance_variable_set(:@argument, arg) } }
        bad.call(:hub, "must be a String, got #{hub.class}") unless hub.is_a?(String)
        bad.call(:pull, "must be an Array of store names, :all or nil") unless pull.nil? || pull.is_a?(Array)
        if bootstrap.is_a?(Array)
          bad.call(:bootstrap, "names stores other than pull:") if pull && !pull.empty? && pull.map(&:to_s).sort != bootstrap.map(&:to_s).sort
          pull = bootstrap if pull.nil? || pull.empty?
          bootstrap = true
        end
        secs = lambda do |arg, v|
          next nil if v.nil?
          next v.to_f if v.is_a?(Time)

          bad.call(arg, "must be a number of seconds, got #{v.inspect}") unless v.is_a?(Numeric)
          v.to_f
        end
        options = {
          hub: hub,
          push: push ? true : false,
          pull: pull&.map(&:to_s),
          bootstrap: bootstrap ? true : false,
          origins: origins&.map(&:to_s),
          since: secs.call(:since, since),
          until: secs.call(:until, binding.local_variable_get(:until)),
          state_dir: state_dir&.to_s,
          connect_timeout: secs.call(:connect_timeout, connect_timeout),
          flush_timeout: secs.call(:flush_timeout, flush_timeout),
          batch_size: batch_size,
          poll_interval: secs.call(:poll_interval, poll_interval),
          verbose: verbose ? true : false
        }
        handle = SyncHandle.new(self, _start_sync(JSON.generate(options)))
        Sync.track(handle)
        handle
      end

      # The syncs of this store started by start_sync and not stopped.
      def syncs
        Sync.of(self)
      end
    end

    at_exit { Sync.stop_all }
  end
end
