# frozen_string_literal: true

require_relative "spec_helper"
require "open3"

# Typed values across languages (issue 19): a Rust program writes structs through serde
# and Ruby reads them as the Hashes it would have written itself; Ruby writes Hashes with
# Symbol (and String) keys and the Rust program reads them into the matching structs.
# The Rust side is examples/typed_interop.rs, built here with cargo.
RSpec.describe "typed values between Rust and Ruby" do
  L = Igniter::Ledger unless defined?(L)

  def interop_binary
    @interop_binary ||= begin
      target = ENV["CARGO_TARGET_DIR"] || File.join(REPO_ROOT, "target")
      out, status = Open3.capture2e("cargo", "build", "--quiet", "--locked", "--example", "typed_interop",
                                    chdir: REPO_ROOT)
      raise "cargo build --example typed_interop failed:\n#{out}" unless status.success?

      File.join(target, "debug", "examples", "typed_interop")
    end
  end

  def run_rust(*args)
    out, status = Open3.capture2e(interop_binary, *args)
    [out, status]
  end

  it "reads what a Rust program wrote from its structs, with Ruby's own types" do
    _, status = run_rust("write", wal_path)
    expect(status).to be_success

    L.open(wal_path) do |s|
      o1 = s.read(store: :orders, key: "o-1")
      expected = {
        id: "o-1",
        status: :paid,
        total: 12.5,
        note: nil,
        tags: %w[gift rush],
        lines: [{ sku: "a", qty: 2, price: 4.0 }, { sku: "b", qty: 1, price: nil }],
        blob: "\x00\xFF".b,
        by_id: { -1 => "minus", 7 => "seven" },
        kind: { gift: { message: "hi ✓" } },
        big: 2**62
      }
      # Type-faithful and in field order: Symbols stay Symbols, the blob is binary.
      expect(sig(o1)).to eq(sig(expected))
      expect(o1[:blob].encoding).to eq(Encoding::BINARY)
      expect(o1[:kind][:gift][:message].encoding).to eq(Encoding::UTF_8)

      o2 = s.read(store: :orders_str, key: "o-2")
      expect(o2.keys.first(3)).to eq(%w[id status total])
      expect(o2["status"]).to eq(:paid)
      expect(o2["lines"].first).to eq("sku" => "a", "qty" => 2, "price" => 4.0)
      expect(o2["kind"]).to eq("gift" => { "message" => "hi ✓" })
    end
  end

  it "lets a Rust program read what Ruby wrote into its structs" do
    ruby_order = lambda do |id, &keys|
      h = {
        id: id,
        status: :open,
        total: 3,
        note: "from ruby",
        tags: [:sym, "str"],
        lines: [{ sku: "z", qty: 5, price: 0.5 }],
        blob: "\x01\x02\xFE".b,
        by_id: { 3 => "three" },
        kind: :plain,
        big: -2**62,
        ignored_by_rust: { anything: [1, :two] }
      }
      keys ? keys.call(h) : h
    end
    stringify = lambda do |v|
      case v
      when Hash then v.to_h { |k, x| [k.is_a?(Symbol) ? k.to_s : k, stringify.call(x)] }
      when Array then v.map { |x| stringify.call(x) }
      else v
      end
    end
    L.open(wal_path) do |s|
      s.write(store: :orders, key: "ruby-1", value: ruby_order.call("ruby-1"))
      s.write(store: :orders_str, key: "ruby-2", value: ruby_order.call("ruby-2") { |h| stringify.call(h) })
    end

    out, status = run_rust("read", wal_path)
    expect(out).to include("orders/ruby-1: ok", "orders_str/ruby-2: ok")
    expect(status).to be_success, out
  end

  it "tells when Ruby wrote something the Rust struct cannot hold" do
    L.open(wal_path) do |s|
      s.write(store: :orders, key: "ruby-1", value: { id: "ruby-1", status: :lost })
      s.write(store: :orders_str, key: "ruby-2", value: { "id" => "ruby-2" })
    end
    out, status = run_rust("read", wal_path)
    expect(status).not_to be_success
    expect(out).to include("value[:status] unknown variant `lost`")
  end
end
