# frozen_string_literal: true

require "json"

module Igniter
  module Ledger
    # Type-faithful values over JSON, for the remote store (Igniter::Ledger.connect): a
    # value read back through the server is the value written (Symbols stay Symbols, Hash
    # keys keep their class, Times stay Times, Facts keep their ids and times). Scalars
    # are themselves; everything else is a one-key tagged object:
    # `{"$h": [[k, v], ...]}`, `{"$s": "name"}`, `{"$t": [sec, nsec, utc_offset]}`,
    # `{"$f": <fact hash>}`. An Array is a JSON array.
    module ValueCodec
      module_function

      def encode(value)
        case value
        when nil, true, false, Integer, String then value
        when Float
          raise ArgumentError, "#{value} cannot be sent to the server" if value.nan? || value.infinite?

          value
        when Symbol then { "$s" => value.to_s }
        when Array then value.map { |v| encode(v) }
        when Hash then { "$h" => value.map { |k, v| [encode(k), encode(v)] } }
        when Time then { "$t" => [value.to_i, value.nsec, value.utc_offset] }
        when Fact then { "$f" => encode(value.to_h) }
        when ChangeEvent then encode(value.to_h)
        else
          raise TypeError, "a #{value.class} cannot be sent to the server"
        end
      end

      def decode(json)
        case json
        when Array then json.map { |v| decode(v) }
        when Hash then decode_tagged(json)
        else json
        end
      end

      def decode_tagged(json)
        raise ArgumentError, "malformed value: #{json.keys.inspect}" unless json.size == 1

        tag, body = json.first
        case tag
        when "$s" then body.to_s.to_sym
        when "$h" then body.to_h { |k, v| [decode(k), decode(v)] }
        when "$t"
          sec, nsec, offset = body
          Time.at(sec, nsec, :nsec).getlocal(offset)
        when "$f" then Fact.from_h(decode(body))
        else raise ArgumentError, "malformed value tag #{tag.inspect}"
        end
      end

      def dump(value)
        JSON.generate(encode(value))
      end

      def load(text)
        decode(JSON.parse(text))
      end
    end
  end
end
