# frozen_string_literal: true

require "rbconfig"

# Loads the native extension (igniter_ledger_native.so). A checkout finds it in lib/
# after `rake compile`; an installed gem finds it in its lib/ or extension directory.
local = File.expand_path("../../igniter_ledger/igniter_ledger_native.#{RbConfig::CONFIG["DLEXT"]}", __dir__)
if File.exist?(local)
  require local
else
  begin
    require "igniter_ledger/igniter_ledger_native"
  rescue LoadError => e
    raise LoadError, "igniter-ledger: the native extension is not built (#{e.message}). " \
                     "In a checkout run `rake compile`; otherwise reinstall the gem " \
                     "(building it needs cargo, https://rustup.rs)."
  end
end
