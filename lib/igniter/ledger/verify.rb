# frozen_string_literal: true

module Igniter
  module Ledger
    # Verification of a ledger's files (the Rust core's igniter_ledger::verify_file and
    # LedgerStore::verify). Changes nothing.
    class LedgerStore
      # Checks this ledger: for a file-backed one, the WAL as written so far (through the
      # ledger's own descriptor, while writes go on) and the snapshot beside it; in
      # memory, the log. Returns a Hash: ok:, frames_checked:, facts_checked:,
      # tombstones:, corrupt: [{offset:, bytes:, reason:}], torn_tail: ({offset:, bytes:}
      # or nil), zero_tail:, hash_mismatches: [{kind:, id:, detail:}],
      # broken_causations: [{id:, store:, causation:, reason:}], causations_to_removed:,
      # duplicate_ids:, out_of_order:, receipts:, snapshot: {status:, ...}, problems:
      # [String]. ok: is false on corruption, a hash mismatch, a broken causation link, a
      # duplicate id or an out-of-order time; a torn tail is reported but allowed.
      def verify
        _verify
      end

      # Checks the ledger file at `path` without opening it as a ledger (no lock taken,
      # nothing written); same Hash as #verify. A file this process has open must be
      # verified through its handle (ArgumentError otherwise).
      def self.verify_file(path)
        path = path.to_path if path.respond_to?(:to_path)
        raise TypeError, "path must be a String or Pathname, got #{path.class}" unless path.is_a?(String)

        _verify_file(path)
      end
    end
  end
end
