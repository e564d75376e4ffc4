# frozen_string_literal: true

module Igniter
  module Ledger
    # An immutable fact. Instances are frozen handles onto facts kept by the Rust core;
    # the value is converted to Ruby (deep-frozen) the first time #value is called.
    #
    # Readers: id, store (Symbol), key, value, value_hash, causation, transaction_time
    # (Float seconds), valid_time, schema_version, producer, derivation; timestamp and term
    # are the 0.5.x names of transaction_time and valid_time.
    class Fact
      FIELDS = %i[id store key value value_hash causation transaction_time valid_time
                  schema_version producer derivation].freeze

      # Builds a standalone fact (stored nowhere) with a fresh id and the current time.
      def self.build(store:, key:, value:, schema_version: 1, causation: nil, valid_time: nil,
                     term: nil, producer: nil, derivation: nil)
        _build(store, key, value, schema_version, causation, valid_time, term, producer, derivation)
      end

      # Rebuilds a fact from its #to_h (String or Symbol keys; the 0.5.x names
      # `timestamp` and `term` are accepted for transaction_time and valid_time). The id,
      # times and causation are kept: a UUID id as it is, any other id String as a
      # name-based UUID (the same for the same String). value_hash is recomputed from the
      # value. A missing id or transaction time gets a fresh one.
      def self.from_h(hash)
        raise TypeError, "Fact.from_h needs a Hash, got #{hash.class}" unless hash.is_a?(Hash)

        h = hash.transform_keys(&:to_sym)
        tt = h.key?(:transaction_time) ? h[:transaction_time] : h[:timestamp]
        vt = h.key?(:valid_time) ? h[:valid_time] : h[:term]
        _restore(h[:id], h.fetch(:store), h.fetch(:key), h[:value], h[:causation], tt, vt,
                 h.fetch(:schema_version, 1) || 1, h[:producer], h[:derivation])
      end

      private_class_method :_build, :_restore

      def timestamp
        transaction_time
      end

      def term
        valid_time
      end

      def to_h
        FIELDS.to_h { |f| [f, public_send(f)] }
      end

      # The 0.5.x Fact was a Struct: fields by name (Symbol or String) or position.
      def [](field)
        name = field.is_a?(Integer) ? FIELDS.fetch(field) { raise IndexError, "offset #{field} too large for fact" } : field.to_sym
        raise NameError, "no member '#{field}' in fact" unless FIELDS.include?(name)

        public_send(name)
      end

      def members
        FIELDS.dup
      end

      def to_a
        FIELDS.map { |f| public_send(f) }
      end
      alias deconstruct to_a
      alias values to_a

      def deconstruct_keys(keys)
        keys ? (keys & FIELDS).to_h { |f| [f, public_send(f)] } : to_h
      end

      def inspect
        "#<#{self.class.name} id=#{id} store=#{store.inspect} key=#{key.inspect} " \
          "value=#{value.inspect} transaction_time=#{format("%.6f", transaction_time)}" \
          "#{valid_time ? " valid_time=#{valid_time}" : ""}>"
      end
      alias to_s inspect
    end

    # A fact whose value a registered coercion changed: the identity readers (id, key,
    # value_hash, causation, times, schema_version...) are the stored fact's; #value is the
    # coerced value. #fact (or #raw_fact) is the stored fact, #raw_value its value.
    class CoercedFact < Fact
      def fact
        raw_fact
      end
    end
  end
end
