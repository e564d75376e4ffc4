# frozen_string_literal: true

# Compatibility path for `require "igniter/store"` (the 0.5.x internal layout).
require_relative "ledger"
