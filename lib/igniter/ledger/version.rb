# frozen_string_literal: true

module Igniter
  # The ledger's module. Its real name is the reference gem's, `Igniter::Store`;
  # `Igniter::Ledger` is the same module (the package's new name), so code written against
  # either keeps working and `module Igniter; module Ledger` reopens this one.
  module Store
    VERSION = "0.6.0"
  end

  Ledger = Store unless const_defined?(:Ledger, false)
end
