# frozen_string_literal: true

# Compatibility shim: the gem was called igniter-store before the rename to
# igniter-ledger. `Igniter::Store` is `Igniter::Ledger`, and `Igniter::Store::IgniterStore`
# is `Igniter::Ledger::LedgerStore`.
require_relative "igniter-ledger"
