# frozen_string_literal: true

require "securerandom"

module Igniter
  module Ledger
    # One committed fact as the changefeed delivers it. Frozen.
    #
    # #cursor is `{sequence: N}` (a standalone ChangefeedBuffer) or
    # `{sequence: N, ledger: "<ledger id>"}` (read from a ledger: N is the fact's 1-based
    # position in the ledger's commit log). #to_h is the wire shape (without #fact).
    class ChangeEvent
      FIELDS = %i[schema_version id type store key fact_id transaction_time emitted_at
                  producer causation cursor].freeze

      attr_reader(*FIELDS, :fact)

      # An event for `fact` at `sequence` (0.5.2 API).
      def self.from_fact(fact, sequence:, ledger: nil)
        unless sequence.is_a?(Integer) && sequence >= 0
          ChangefeedArgs.refuse(:sequence, "sequence: must be a non-negative Integer, got #{sequence.inspect}")
        end

        new("change_#{SecureRandom.uuid}", fact, sequence, ledger, Process.clock_gettime(Process::CLOCK_REALTIME))
      end

      # Called by the extension for events made by the core.
      def self._native(id, fact, sequence, ledger, emitted_at)
        new(id, fact, sequence, ledger, emitted_at)
      end
      private_class_method :new, :_native

      def initialize(id, fact, sequence, ledger, emitted_at)
        @schema_version = 1
        @id = id
        @type = :fact_committed
        @store = fact.store
        @key = fact.key
        @fact_id = fact.id
        @transaction_time = fact.transaction_time
        @emitted_at = emitted_at
        @producer = fact.producer
        @causation = fact.causation
        @cursor = (ledger ? { sequence: sequence, ledger: ledger } : { sequence: sequence }).freeze
        @fact = fact
        freeze
      end

      # The fact's position (cursor[:sequence]).
      def sequence
        @cursor[:sequence]
      end

      def to_h
        FIELDS.to_h { |f| [f, public_send(f)] }
      end

      def inspect
        "#<#{self.class.name} #{@cursor.inspect} store=#{@store.inspect} key=#{@key.inspect} fact_id=#{@fact_id}>"
      end
      alias to_s inspect
    end

    # A changefeed argument that was refused (an unknown policy, a non-positive size, a
    # malformed cursor or one of another ledger, subscribe without a block, ...). An
    # ArgumentError, as the 0.5.2 gem raised, and an Igniter::Ledger::Error. #argument
    # names what was refused (:overflow, :cursor, :after, :block, ...). Defined by the
    # extension.
    class ChangefeedArgumentError
      include Error::Tag
      attr_reader :argument

      def initialize(message = nil, argument = nil)
        super(message)
        @argument = argument
      end
    end

    # A cursor older than what retention kept: compaction or a prune removed the facts
    # right after it. #horizon is the oldest cursor that can resume (`{sequence:,
    # ledger:}`); the facts kept after it are all there.
    class CursorTooOldError
      attr_reader :horizon
    end

    # Argument shapes shared by ChangefeedBuffer and LedgerStore.
    module ChangefeedArgs
      module_function

      def refuse(argument, message)
        raise ChangefeedArgumentError.new(message, argument.to_sym)
      end

      # [sequence, ledger] from nil, a ChangeEvent or a Hash `{sequence: N[, ledger: id]}`
      # (String keys accepted, as from JSON).
      def cursor(value, what = "cursor")
        return [nil, nil] if value.nil?

        value = value.cursor if value.is_a?(ChangeEvent)
        unless value.is_a?(Hash)
          refuse(what, "#{what}: must be a Hash like {sequence: N} (or nil), got #{value.inspect}")
        end

        h = value.transform_keys { |k| k.is_a?(String) ? k.to_sym : k }
        extra = h.keys - %i[sequence ledger]
        refuse(what, "#{what}: unknown keys #{extra.inspect} in #{value.inspect}") unless extra.empty?

        seq = h[:sequence]
        unless seq.is_a?(Integer) && seq >= 0
          refuse(what, "#{what}: sequence must be a non-negative Integer, got #{seq.inspect}")
        end

        ledger = h[:ledger]
        unless ledger.nil? || ledger.is_a?(String)
          refuse(what, "#{what}: ledger must be a ledger id String, got #{ledger.inspect}")
        end

        [seq, ledger]
      end

      # nil or [] (all stores), a name, or an Array of names.
      def stores(value)
        case value
        when nil then []
        when Array then value
        when Symbol, String then [value]
        else raise TypeError, "stores: must be an Array of store names (or nil), got #{value.class}"
        end
      end

      # Runs the block; a core error about the cursor names the caller's keyword instead.
      def naming(keyword)
        yield
      rescue ArgumentError => e
        raise unless e.message.start_with?("cursor:")

        renamed = e.exception(e.message.sub("cursor:", "#{keyword}:"))
        renamed.instance_variable_set(:@argument, keyword.to_sym) if renamed.is_a?(ChangefeedArgumentError)
        raise renamed
      end

      def limit(value)
        return nil if value.nil?
        refuse(:limit, "limit: must be a positive Integer, got #{value.inspect}") unless value.is_a?(Integer) && value.positive?

        value
      end

      def positive(name, value)
        refuse(name, "#{name}: must be a positive Integer, got #{value.inspect}") unless value.is_a?(Integer) && value.positive?

        value
      end

      def policy(name, value)
        return value.to_s if value.is_a?(Symbol) || value.is_a?(String)

        refuse(name, "#{name}: unknown #{name == "overflow" ? "overflow policy" : "close_policy"} #{value.inspect}")
      end
    end

    # The changefeed: a bounded ring of recent events plus subscribers, each with its own
    # bounded queue and a worker thread that runs its block. Its engine is the Rust core.
    #
    #   feed = Igniter::Ledger::ChangefeedBuffer.new(subscriber_queue_size: 100)
    #   store = Igniter::Ledger::LedgerStore.open("app.wal", changefeed: feed)
    #   sub = feed.subscribe(stores: [:orders]) { |event| puts event.cursor }
    #   ...
    #   sub.close
    #
    # Standalone (events from #emit) it numbers events 1, 2, 3 … and #replay answers
    # :cursor_too_old once the ring moved past a cursor. Attached to a ledger, its events
    # are the ledger's commits, numbered by their position in the log, and #replay reads
    # the log itself.
    class ChangefeedBuffer
      class << self
        # max_size: ring size; subscriber_queue_size: per-subscriber queue capacity;
        # overflow: :drop_oldest | :drop_newest | :catch_up (default: :drop_oldest
        # standalone, :catch_up once attached to a ledger: a subscriber that falls behind
        # reads what it missed back from the log); close_policy: :drain | :discard;
        # diagnostic_ring_size; alert_thresholds: {total_queued:, overflow_dropped_total:,
        # failed_total:, queue_pressure_ratio:}.
        def new(max_size: 1000, subscriber_queue_size: 100, overflow: nil, close_policy: :drain,
                diagnostic_ring_size: 100, alert_thresholds: {})
          a = ChangefeedArgs
          raise TypeError, "alert_thresholds: must be a Hash, got #{alert_thresholds.class}" unless alert_thresholds.is_a?(Hash)

          thresholds = alert_thresholds.map do |k, v|
            a.refuse(:alert_thresholds, "alert_thresholds: #{k} must be a Numeric, got #{v.inspect}") unless v.is_a?(Numeric)

            [k.to_s, v.to_f]
          end
          _new(a.positive("max_size", max_size), a.positive("subscriber_queue_size", subscriber_queue_size),
               overflow.nil? ? nil : a.policy("overflow", overflow), a.policy("close_policy", close_policy),
               a.positive("diagnostic_ring_size", diagnostic_ring_size), thresholds)
        end
      end
      private_class_method :_new

      # Emits a fact by hand (a standalone buffer); returns its ChangeEvent. Never waits
      # for a subscriber.
      def emit(fact)
        _emit(fact)
      end

      # Runs the block for each event of `stores` (nil or []: all stores) on a worker
      # thread of its own; returns the Subscription. after: a cursor to start from
      # (attached buffers): the events after it are read back from the ledger first.
      # A block that raises is removed and counted (snapshot[:failed_total]).
      def subscribe(stores: [], after: nil, &block)
        ChangefeedArgs.refuse(:block, "subscribe needs a block") unless block

        seq, ledger = ChangefeedArgs.cursor(after, "after")
        sub = ChangefeedArgs.naming("after") { _subscribe(ChangefeedArgs.stores(stores), seq, ledger) }
        sub.__send__(:start, block)
      end

      # {status: :ok | :cursor_too_old, events:, cursor:, oldest_cursor:, newest_cursor:,
      # dropped_total:}: the events after `cursor` (nil: from the start) of `stores`, at
      # most `limit`.
      def replay(cursor: nil, stores: nil, limit: nil)
        seq, ledger = ChangefeedArgs.cursor(cursor)
        _replay(seq, ledger, ChangefeedArgs.stores(stores), ChangefeedArgs.limit(limit))
      end

      # Active subscribers following `store` (one following all stores counts), or all.
      def subscriber_count(store = nil)
        _subscriber_count(store)
      end

      def inspect
        s = snapshot
        "#<#{self.class.name} emitted=#{s[:emitted_total]} subscribers=#{s[:subscriber_count]}" \
          "#{s[:attached] ? " attached" : ""}>"
      end
      alias to_s inspect
    end

    # A subscription of a ChangefeedBuffer. #close stops it (idempotent): under the
    # :drain policy its worker first runs the block for the events still queued, under
    # :discard it stops after the current one; #close waits for the worker (unless called
    # from the block itself).
    class Subscription
      # The worker thread and the block.
      Record = Struct.new(:thread, :handler)

      # How long the worker waits in the extension (GVL released) before it checks for
      # interrupts; events wake it at once.
      WAIT = 0.2

      def close
        _close
        t = @record&.thread
        t.join if t && !t.equal?(Thread.current)
        nil
      end

      def inspect
        "#<#{self.class.name} #{id} stores=#{stores.inspect}#{closed? ? " closed" : ""}>"
      end
      alias to_s inspect

      private

      def start(handler)
        @record = Record.new(nil, handler)
        @record.thread = Thread.new { run(handler) }
        @record.thread.name = "igniter-ledger changefeed #{id}" if @record.thread.respond_to?(:name=)
        self
      end

      def run(handler)
        Thread.current.report_on_exception = false
        loop do
          event = _take(WAIT)
          break if event.nil?
          next if event == false

          begin
            handler.call(event)
          rescue StandardError => e
            _fail(e.class.name.to_s, e.message.to_s)
            break
          end
          _ack
        end
      ensure
        _close unless closed?
      end
    end

    class LedgerStore
      # The ChangefeedBuffer given as `changefeed:` (nil without).
      def changefeed
        @changefeed
      end

      # The committed facts after `after` (a cursor; nil: from the first fact) as
      # ChangeEvents, read from the ledger itself: a consumer resumes exactly where it
      # stopped, however long ago (a fact keeps its sequence across reopen, checkpoints,
      # compaction and prunes). stores: only these (nil: all); limit: at most this many.
      # Raises CursorTooOldError (naming the horizon) only when retention removed the
      # facts right after `after`; ChangefeedArgumentError for a malformed cursor, one of
      # another ledger, or one past the newest fact.
      def changes(after: nil, stores: nil, limit: nil)
        seq, ledger = ChangefeedArgs.cursor(after, "after")
        ChangefeedArgs.naming("after") { _changes(seq, ledger, ChangefeedArgs.stores(stores), ChangefeedArgs.limit(limit)) }
      end

      private

      def attach_changefeed(feed)
        return self if feed.nil?

        _attach_changefeed(feed)
        @changefeed = feed
        self
      end
    end
  end
end
