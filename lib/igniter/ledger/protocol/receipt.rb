# frozen_string_literal: true

module Igniter
  module Ledger
    module Protocol
      # The answer to registering a descriptor or writing through the protocol: status
      # :accepted, :rejected or :deduplicated, with the reference's fields. The
      # interpreter (in the Rust core) builds them; the constructors here are for callers
      # that build their own, as the reference allows.
      #
      # Built with keywords (`Receipt.new(kind: :store, status: :accepted, ...)`) or
      # positionally in member order (the native side fills members directly).
      Receipt = Struct.new(:schema_version, :kind, :status, :name, :store, :key, :fact_id, :value_hash,
                           :warnings, :errors, :derived) do
        def initialize(*args, **kw)
          if kw.empty?
            super(*args)
          else
            raise ArgumentError, "Receipt.new takes keywords or positional members, not both" unless args.empty?

            unknown = kw.keys - members
            raise ArgumentError, "unknown Receipt members: #{unknown.join(", ")}" unless unknown.empty?

            super(*members.map { |m| kw[m] })
          end
        end

        class << self
          # A receipt from a Hash with the members' names (as the wire's JSON gives).
          def from_h(h)
            new(**h.transform_keys(&:to_sym).slice(*members))
          end

          def accepted(kind:, name: nil, warnings: [], **rest)
            build(:accepted, kind: kind, name: name, warnings: warnings, **rest)
          end

          def rejection(error, kind: nil, name: nil, **rest)
            build(:rejected, kind: kind, name: name, errors: [error.to_s], **rest)
          end

          def deduplicated(kind:, name: nil, **rest)
            build(:deduplicated, kind: kind, name: name, **rest)
          end

          # An accepted write of `fact`.
          def write_accepted(store:, key:, fact:)
            build(:accepted, kind: :write_receipt, store: store.to_sym, key: key.to_s, fact_id: fact.id,
                             value_hash: fact.value_hash)
          end

          # An accepted append of `fact`; a requested key is only echoed as a warning.
          def append_accepted(history:, fact:, requested_key: nil)
            warnings = []
            unless requested_key.nil?
              warnings << "requested key #{requested_key.to_s.inspect} is metadata only: append generated key #{fact.key}"
            end
            build(:accepted, kind: :append_receipt, store: history.to_sym, key: fact.key, fact_id: fact.id,
                             value_hash: fact.value_hash, warnings: warnings)
          end

          private

          def build(status, warnings: [], errors: [], derived: [], **fields)
            new(schema_version: 1, status: status, warnings: warnings, errors: errors, derived: derived, **fields)
          end
        end

        def accepted?
          status == :accepted
        end

        def rejected?
          status == :rejected
        end

        def deduplicated?
          status == :deduplicated
        end
      end
    end
  end
end
