# frozen_string_literal: true

module Igniter
  module Ledger
    module Protocol
      # The Ledger Open Protocol interpreter over one store. Every method is a thin
      # wrapper: packets go to the interpreter in the Rust core as Hashes and come back
      # type-faithfully (Symbols stay Symbols).
      class Interpreter
        DESCRIPTOR_KINDS = %i[store history access_path relation projection derivation command effect
                              subscription].freeze

        class << self
          # Interpreter.new(store = nil): over `store`, or over a new in-memory store.
          def new(store = nil)
            store ||= LedgerStore.new
            unless store.is_a?(LedgerStore)
              raise ArgumentError, "Protocol::Interpreter needs an Igniter::Ledger::LedgerStore, got #{store.class}"
            end

            interpreter = _new(self, store)
            interpreter.instance_variable_set(:@store, store)
            interpreter
          end
        end
        private_class_method :_new

        # The store this interpreter writes to and reads from.
        attr_reader :store

        # Registers a descriptor of any kind; answers a Receipt (never raises).
        def register(descriptor = nil, **kw)
          _register_as(nil, descriptor || kw)
        end

        DESCRIPTOR_KINDS.each do |kind|
          define_method(:"register_#{kind}") do |descriptor = nil, **kw|
            _register_as(kind, descriptor || kw)
          end
        end

        # write(store:, key:, value:, producer:, derivation:, valid_time:, schema_version:,
        # causation:) → Receipt. Raises ProtocolError (an ArgumentError) for a bad packet.
        def write(packet = nil, **kw)
          _call(:write, packet || kw)
        end

        # append(history:, event:, partition_key:, producer:, ...) → append Receipt.
        def append(packet = nil, **kw)
          _call(:append, packet || kw)
        end

        # write_fact(kind: :fact, store:, key:, value:, ...) → Receipt (rejected, never
        # raised, for a bad packet).
        def write_fact(packet = nil, **kw)
          _call(:write_fact, packet || kw)
        end

        # The current (or as_of) value of (store, key), or nil.
        def read(packet = nil, **kw)
          _call(:read, packet || kw)
        end

        # query(store:, where: {}, order: nil, limit: nil, as_of: nil) → [{key:, value:}]
        def query(packet = nil, **kw)
          _call(:query, packet || kw)
        end

        # The current values of the relation's source records pointing at `from`.
        def resolve(relation, from:, as_of: nil)
          resolve_items(relation, from: from, as_of: as_of).map { |item| item[:value] }
        end

        # Like #resolve, as [{key:, value:}].
        def resolve_items(relation, from:, as_of: nil)
          _call(:resolve, { relation: relation, from: from, as_of: as_of })
        end

        def causation_chain(packet = nil, **kw)
          _call(:causation_chain, packet || kw)
        end

        def lineage(packet = nil, **kw)
          _call(:lineage, packet || kw)
        end

        # fact_ref(id) or fact_ref(fact_id:) → {id:, store:, key:, ...} or nil.
        def fact_ref(id = nil, fact_id: nil)
          _call(:fact_ref, { fact_id: id || fact_id })
        end

        # replay(from:, to:, filter: {store:[, key:] | [, partition_key:, partition_value:]})
        # → fact packets.
        def replay(packet = nil, **kw)
          _call(:replay, packet || kw)
        end

        # sync_hub_profile(as_of:, cursor: {kind: :timestamp, value:}, stores:) → SyncProfile
        def sync_hub_profile(packet = nil, **kw)
          SyncProfile.from_h(_call(:sync_hub_profile, packet || kw))
        end

        def metadata_snapshot
          _call(:metadata_snapshot, nil)
        end

        def descriptor_snapshot
          _call(:descriptor_snapshot, nil)
        end

        def observability_snapshot
          _call(:observability_snapshot, nil)
        end

        # Segment storage statistics; nil for a ledger without segment storage.
        def storage_stats(store: nil)
          _call(:storage_stats, { store: store })
        end

        def segment_manifest(store: nil)
          _call(:segment_manifest, { store: store })
        end

        # {schema_version:, generated_at:, filters:, activity:, count:}
        def compaction_activity(store: nil, kind: nil, since: nil, limit: nil)
          _call(:compaction_activity, { store: store, kind: kind, since: since, limit: limit })
        end

        # The wire envelope over this interpreter (memoized).
        def wire
          @wire ||= WireEnvelope.new(self)
        end

        def dispatch(envelope)
          wire.dispatch(envelope)
        end

        def inspect
          "#<#{self.class.name} #{@store.inspect}>"
        end
      end
    end
  end
end
