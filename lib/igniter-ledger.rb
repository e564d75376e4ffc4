# frozen_string_literal: true

# igniter-ledger: an embedded, append-only, bitemporal fact ledger (Rust core, native
# Ruby extension). Entry point: Igniter::Ledger::LedgerStore.
require_relative "igniter/ledger"
