# frozen_string_literal: true

# Loads igniter-ledger from this checkout's lib/ and refuses to run against anything but
# the extension freshly built from this checkout (an installed gem, or a lib/ copy older
# than the sources, would make the specs test the wrong code).

require "digest"
require "fileutils"
require "rbconfig"
require "tmpdir"

REPO_ROOT = File.expand_path("../..", __dir__)
REPO_LIB = File.join(REPO_ROOT, "lib")
$LOAD_PATH.unshift(REPO_LIB) unless $LOAD_PATH.include?(REPO_LIB)

require "igniter-ledger"

module ExtensionGuard
  module_function

  def check!
    expected = File.join(REPO_LIB, "igniter_ledger", "igniter_ledger_native.#{RbConfig::CONFIG["DLEXT"]}")
    loaded = $LOADED_FEATURES.grep(/igniter_ledger_native\.#{RbConfig::CONFIG["DLEXT"]}\z/)
    abort "spec_helper: the extension was not loaded at all" if loaded.empty?
    unless loaded == [expected]
      abort "spec_helper: loaded #{loaded.inspect}, not this checkout's #{expected}. " \
            "Run `rake compile` (and make sure no other copy is on $LOAD_PATH)."
    end

    built_at = File.mtime(expected)
    sources = Dir[File.join(REPO_ROOT, "{src,ext/igniter_ledger/src}", "**", "*.rs")] +
              [File.join(REPO_ROOT, "Cargo.toml"), File.join(REPO_ROOT, "ext/igniter_ledger/Cargo.toml")]
    newer = sources.select { |f| File.mtime(f) > built_at }
    unless newer.empty?
      abort "spec_helper: #{expected} is older than #{newer.first(3).join(", ")}: run `rake compile`"
    end

    builds = Dir[File.join(ENV["CARGO_TARGET_DIR"] || File.join(REPO_ROOT, "target"),
                           "{release,debug}", "libigniter_ledger_native.{so,dylib}")]
    latest = builds.max_by { |f| File.mtime(f) }
    if latest && Digest::SHA256.file(latest) != Digest::SHA256.file(expected)
      abort "spec_helper: #{expected} differs from the latest cargo build #{latest}: run `rake compile`"
    end
  end
end

ExtensionGuard.check!

module LedgerHelpers
  L = Igniter::Ledger

  def tmp_dir
    @tmp_dir ||= Dir.mktmpdir("igniter-ledger-spec")
  end

  def wal_path(name = "ledger.wal")
    File.join(tmp_dir, name)
  end

  # A structure describing v with its classes and encodings, so that `eq` on signatures
  # is a type-faithful comparison (Symbol vs String, binary vs UTF-8, -0.0 vs 0.0, NaN).
  def sig(v)
    case v
    when Hash then [:hash, v.map { |k, val| [sig(k), sig(val)] }]
    when Array then [:array, v.map { |x| sig(x) }]
    when String then [:string, v.encoding == Encoding::BINARY ? :binary : :utf8, v.b]
    when Symbol then [:symbol, v.to_s]
    when Float then [:float, [v].pack("G")]
    when Integer then [:integer, v]
    else [v.class, v]
    end
  end

  def deep_frozen?(v)
    return false unless v.frozen?

    case v
    when Hash then v.all? { |k, val| deep_frozen?(k) && deep_frozen?(val) }
    when Array then v.all? { |x| deep_frozen?(x) }
    else true
    end
  end
end

RSpec.configure do |config|
  config.include LedgerHelpers
  config.after do
    FileUtils.rm_rf(@tmp_dir) if @tmp_dir
  end
  config.disable_monkey_patching!
  config.order = :random
  Kernel.srand config.seed
end
