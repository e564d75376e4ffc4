# frozen_string_literal: true

module Igniter
  module Ledger
    VERSION = "0.6.0"
  end
end
