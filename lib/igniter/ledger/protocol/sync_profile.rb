# frozen_string_literal: true

module Igniter
  module Ledger
    module Protocol
      # The answer to Interpreter#sync_hub_profile: every fact (:full, no cursor given) or
      # the facts after a timestamp cursor (:incremental), and the cursor to ask with next.
      SyncProfile = Struct.new(:schema_version, :kind, :mode, :as_of, :cursor, :next_cursor, :stores,
                               :fact_count, :facts, keyword_init: true) do
        def self.from_h(h)
          new(**h.slice(*members))
        end

        def full?
          mode == :full
        end

        def incremental?
          mode == :incremental
        end
      end
    end
  end
end
