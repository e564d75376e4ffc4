# frozen_string_literal: true

module Igniter
  module Ledger
    # The 0.5.x read cache, with its API: point entries `put/get(store:, key:, as_of:)`
    # and scope entries `put_scope/get_scope(store:, scope:, as_of:)`.
    #
    # Current-state entries (`as_of: nil`) live until invalidated. Time-travel entries
    # (`as_of:` given) are kept in least-recently-used order and bounded by `lru_cap:`
    # (a `get` that finds one makes it the most recently used); `lru_size` counts them.
    # `invalidate(store:, key:)` drops the key's entries (every as_of) and the store's
    # scope entries.
    #
    # Each entry may carry a `token:` (any object); `get`/`get_scope` given a `token:`
    # answer only an entry stored with no token or an equal one. LedgerStore uses this for its
    # time-travel reads and `cache_ttl` scope queries, with the store's fact count as
    # the token, so an entry never outlives a write.
    class ReadCache
      DEFAULT_LRU_CAP = 1000

      Entry = Struct.new(:value, :at, :token)
      private_constant :Entry

      attr_reader :lru_cap

      def initialize(lru_cap: DEFAULT_LRU_CAP)
        raise ArgumentError, "lru_cap: must be a non-negative Integer, got #{lru_cap.inspect}" unless lru_cap.is_a?(Integer) && lru_cap >= 0

        @lru_cap = lru_cap
        @current = {}
        @lru = {} # insertion-ordered: the first entry is the least recently used
        @lock = Mutex.new
      end

      def put(store:, key:, fact:, as_of: nil, token: nil)
        store_entry([name(store), key_name(key), as_of], fact, as_of, token)
      end

      # The cached fact, or nil. ttl: (seconds) ignores entries older than that.
      def get(store:, key:, as_of: nil, ttl: nil, token: nil)
        fetch([name(store), key_name(key), as_of], as_of, ttl, token)
      end

      def put_scope(store:, scope:, facts:, as_of: nil, token: nil)
        store_entry([:__scope__, name(store), name(scope), as_of], facts, as_of, token)
      end

      def get_scope(store:, scope:, as_of: nil, ttl: nil, token: nil)
        fetch([:__scope__, name(store), name(scope), as_of], as_of, ttl, token)
      end

      # Drops the entries of (store, key) and the scope entries of store.
      def invalidate(store:, key: nil)
        store = name(store)
        key = key_name(key)
        @lock.synchronize do
          [@current, @lru].each do |h|
            h.delete_if do |k, _|
              k[0] == :__scope__ ? k[1] == store : (k[0] == store && (key.nil? || k[1] == key))
            end
          end
        end
        nil
      end

      def clear
        @lock.synchronize do
          @current.clear
          @lru.clear
        end
        nil
      end

      # Time-travel entries held (they count against lru_cap).
      def lru_size
        @lru.size
      end

      # Every entry held.
      def size
        @current.size + @lru.size
      end

      private

      # Store and scope names as Symbols, keys as Strings (anything else as given).
      def name(x)
        x.is_a?(String) && x.valid_encoding? ? x.to_sym : x
      end

      def key_name(x)
        x.is_a?(Symbol) ? x.to_s : x
      end

      def store_entry(k, value, as_of, token)
        e = Entry.new(value, Process.clock_gettime(Process::CLOCK_MONOTONIC), token)
        @lock.synchronize do
          if as_of.nil?
            @current[k] = e
          elsif @lru_cap.positive?
            @lru.delete(k)
            @lru[k] = e
            @lru.shift while @lru.size > @lru_cap
          end
        end
        value
      end

      def fetch(k, as_of, ttl, token)
        @lock.synchronize do
          e = as_of.nil? ? @current[k] : @lru[k]
          return nil unless e
          return nil if ttl && Process.clock_gettime(Process::CLOCK_MONOTONIC) - e.at > ttl
          return nil unless token.nil? || e.token.nil? || e.token == token

          unless as_of.nil?
            @lru.delete(k)
            @lru[k] = e # most recently used
          end
          e.value
        end
      end
    end
  end
end
