# frozen_string_literal: true

require_relative "lib/igniter/ledger/version"

Gem::Specification.new do |spec|
  spec.name = "igniter-ledger"
  spec.version = Igniter::Ledger::VERSION
  spec.summary = "Embedded, append-only, bitemporal fact ledger (Rust core, native Ruby extension)"
  spec.description = <<~DESC
    Every change is an immutable fact; current state, time travel (as_of), bitemporal
    reads (valid_at), history, partitions and scopes are views over a CRC32-framed
    write-ahead log with snapshots, three durability modes and group commit. A native
    (Rust, magnus) drop-in for the 0.5.x igniter-ledger / igniter-store Ruby API.
  DESC
  spec.license = "MIT"
  spec.authors = ["igniter-ledger contributors"]
  spec.required_ruby_version = ">= 3.0"

  # The gem ships the Rust sources (core crate + extension crate) and builds them with
  # cargo at install time; Cargo.lock pins the dependency versions.
  spec.files = Dir[
    "lib/**/*.rb",
    "exe/*",
    "ext/**/*.{rb,rs,toml}",
    "src/**/*.rs",
    "server/Cargo.toml",
    "server/src/**/*.rs",
    "{benches,examples,tests}/**/*.rs",
    "build.rs",
    "Cargo.toml",
    "Cargo.lock",
    "README.md",
    "LICENSE*",
    "igniter-ledger.gemspec"
  ].select { |f| File.file?(f) }
  spec.bindir = "exe"
  spec.executables = %w[igniter-ledger-server igniter-store-server]
  spec.require_paths = ["lib"]
  spec.extensions = ["ext/igniter_ledger/extconf.rb"]
end
