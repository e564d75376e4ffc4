# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe "values" do
  # Every supported kind of value, with the extremes of each.
  SCALARS = {
    "nil" => nil,
    "true" => true,
    "false" => false,
    "zero" => 0,
    "negative integer" => -42,
    "large integer" => 2**62 + 7,
    "i64 max" => 2**63 - 1,
    "i64 min" => -2**63,
    "float" => 3.25,
    "negative zero" => -0.0,
    "tiny float" => 5e-324,
    "infinity" => Float::INFINITY,
    "minus infinity" => -Float::INFINITY,
    "nan" => Float::NAN,
    "empty string" => "",
    "utf-8 string" => "héllo wörld ✓ 🎉",
    "string with NUL" => "a\u0000b",
    "binary string" => "\xFF\x00\xC3(".b,
    "ascii-only binary string" => "abc".b,
    "empty binary string" => "".b,
    "symbol" => :open,
    "unicode symbol" => :"статус ✓",
    "symbol that looks like a string" => :"with space"
  }.freeze

  CONTAINERS = {
    "empty array" => [],
    "empty hash" => {},
    "nested array" => [1, [2, [3, [4, []]]], "x", :y],
    "symbol-keyed hash" => { title: "Buy milk", status: :open },
    "string-keyed hash" => { "title" => "Buy milk", "status" => "open" },
    "integer-keyed hash" => { 1 => "one", -2 => "minus two", 2**62 => "big" },
    "symbol and string keys of the same name" => { a: 1, "a" => 2 },
    "integer and string keys of the same digits" => { 1 => :int, "1" => :str },
    "mixed deep structure" => {
      meta: { tags: [:a, "b", 1, 2.5, nil, true], "nested" => { 3 => [{ x: "\xFE".b }] } },
      list: [[], {}, [{}]]
    },
    "every scalar in an array" => SCALARS.values,
    "every scalar as a hash value" => SCALARS.transform_keys(&:to_sym)
  }.freeze

  KEYS = [:sym, :"odd key ✓", "str", "", "ünï", 0, -1, 2**63 - 1, -2**63].freeze

  ALL = SCALARS.merge(CONTAINERS).merge("hash with every key kind" => KEYS.each_with_index.to_h)

  def round_trips(store, values)
    values.each_with_index do |(name, v), i|
      read = store.read(store: :values, key: "k#{i}")
      expect(sig(read)).to eq(sig(v)), "#{name}: wrote #{v.inspect}, read #{read.inspect}"
      expect(deep_frozen?(read)).to be(true), "#{name}: not deep-frozen"
    end
  end

  def write_all(store, values)
    values.each_with_index { |(_, v), i| store.write(store: :values, key: "k#{i}", value: v) }
  end

  it "round-trips every supported type in memory" do
    store = Igniter::Ledger.memory
    write_all(store, ALL)
    round_trips(store, ALL)
  end

  it "round-trips every supported type through reopen" do
    Igniter::Ledger.open(wal_path) { |s| write_all(s, ALL) }
    Igniter::Ledger.open(wal_path) { |s| round_trips(s, ALL) }
  end

  it "round-trips every supported type through a checkpoint" do
    Igniter::Ledger.open(wal_path) do |s|
      write_all(s, ALL)
      s.checkpoint
    end
    Igniter::Ledger.open(wal_path) do |s|
      expect(s.open_report[:snapshot][:status]).to eq(:loaded)
      expect(s.open_report[:frames_replayed]).to eq(0)
      round_trips(s, ALL)
    end
  end

  it "round-trips producer, derivation, events and fact values the same way" do
    s = Igniter::Ledger.memory
    v = CONTAINERS["mixed deep structure"]
    f = s.append(history: :h, event: v, producer: v, derivation: v)
    [f.value, f.producer, f.derivation, s.fact_by_id(f.id).value].each do |x|
      expect(sig(x)).to eq(sig(v))
      expect(deep_frozen?(x)).to be(true)
    end
  end

  it "keeps binary strings binary and UTF-8 strings UTF-8" do
    s = Igniter::Ledger.memory
    s.write(store: :b, key: "k", value: { bin: "\x00\xFF".b, text: "ü", ascii: "plain".encode("US-ASCII") })
    v = s.read(store: :b, key: "k")
    expect(v[:bin].encoding).to eq(Encoding::BINARY)
    expect(v[:text].encoding).to eq(Encoding::UTF_8)
    expect(v[:ascii]).to eq("plain") # US-ASCII is stored as UTF-8
  end

  it "hands out values readers cannot change" do
    s = Igniter::Ledger.memory
    f = s.write(store: :f, key: "k", value: { list: ["a", { b: "c" }] })
    v = s.read(store: :f, key: "k")
    expect { v[:new] = 1 }.to raise_error(FrozenError)
    expect { v[:list] << 1 }.to raise_error(FrozenError)
    expect { v[:list][0] << "x" }.to raise_error(FrozenError)
    expect { f.value[:list][1][:b] << "x" }.to raise_error(FrozenError)
    expect(s.read(store: :f, key: "k")).to eq(list: ["a", { b: "c" }])
  end

  it "does not keep references to the caller's objects" do
    s = Igniter::Ledger.memory
    mine = { list: [+"a"] }
    s.write(store: :m, key: "k", value: mine)
    mine[:list] << "b"
    mine[:list][0] << "!"
    expect(s.read(store: :m, key: "k")).to eq(list: ["a"])
  end

  it "reads subclasses of String, Array and Hash as their base classes" do
    sub_hash = Class.new(Hash)
    sub_array = Class.new(Array)
    sub_string = Class.new(String)
    s = Igniter::Ledger.memory
    s.write(store: :s, key: "k", value: sub_hash[a: sub_array[sub_string.new("x")]])
    v = s.read(store: :s, key: "k")
    expect(v.class).to eq(Hash)
    expect(v[:a].class).to eq(Array)
    expect(v[:a][0].class).to eq(String)
  end

  describe "refused values" do
    cyclic_array = [1].tap { |a| a << a }
    cyclic_hash = {}.tap { |h| h[:self] = h }
    deep = 200.times.reduce(1) { |acc, _| [acc] }

    REFUSED = [
      [Time.at(0), TypeError, /\Avalue is a Time/],
      [{ meta: { at: Time.at(0) } }, TypeError, /\Avalue\[:meta\]\[:at\] is a Time/],
      [[1, [2, Object.new]], TypeError, /\Avalue\[1\]\[1\] is a Object/],
      [{ "k" => -> {} }, TypeError, /\Avalue\["k"\] is a Proc/],
      [{ 3 => Struct.new(:a).new(1) }, TypeError, /\Avalue\[3\] is a #<Class/],
      [1.0r, TypeError, /\Avalue is a Rational/],
      [2**64, RangeError, /\Avalue is an Integer out of range/],
      [{ n: -2**63 - 1 }, RangeError, /\Avalue\[:n\] is an Integer out of range/],
      [{ text: "ok", bad: "\xFF\xFE".dup.force_encoding("UTF-8") }, ArgumentError, /\Avalue\[:bad\] is a String with invalid UTF-8/],
      [["é".encode("ISO-8859-1")], ArgumentError, /\Avalue\[0\] is a String in ISO-8859-1/],
      [{ 1.5 => :x }, TypeError, /\Avalue has a Float key/],
      [{ a: { nil => 1 } }, TypeError, /\Avalue\[:a\] has a NilClass key/],
      [{ "\xFF".b => 1 }, ArgumentError, /\Avalue has a binary \(ASCII-8BIT\) String key/],
      [{ 2**64 => 1 }, RangeError, /\Avalue has an Integer out of the 64-bit signed range key/],
      [cyclic_array, ArgumentError, /\Avalue\[1\] is a cyclic reference/],
      [{ a: [cyclic_hash] }, ArgumentError, /\Avalue\[:a\]\[0\]\[:self\] is a cyclic reference/],
      [deep, ArgumentError, /nests deeper than 128 levels/]
    ].freeze

    REFUSED.each do |value, error, message|
      it "refuses #{value.inspect[0, 50]} with #{error} naming the path, writing nothing" do
        Igniter::Ledger.open(wal_path) do |s|
          s.write(store: :v, key: "k", value: :before)
          size = File.size(wal_path)
          expect { s.write(store: :v, key: "k", value: value) }.to raise_error(error, message)
          expect { s.append(history: :h, event: value) }.to raise_error(error, message.source.sub("value", "event").then { |m| Regexp.new(m) })
          expect { s.write(store: :v, key: "k", value: 1, producer: value) }.to raise_error(error)
          expect { s.transaction { |tx| tx.write(store: :v, key: "k2", value: 1); tx.write(store: :v, key: "k3", value: value) } }
            .to raise_error(error, /batch operation 2: /)
          expect(s.fact_count).to eq(1)
          expect(s.read(store: :v, key: "k")).to eq(:before)
          expect(s.read(store: :v, key: "k2")).to be_nil
          expect(File.size(wal_path)).to eq(size)
        end
      end
    end

    it "accepts shared (non-cyclic) substructures" do
      shared = { x: 1 }
      s = Igniter::Ledger.memory
      s.write(store: :v, key: "k", value: [shared, shared, { again: shared }])
      expect(s.read(store: :v, key: "k")).to eq([{ x: 1 }, { x: 1 }, { again: { x: 1 } }])
    end

    it "accepts nesting up to 128 levels" do
      ok = 127.times.reduce(1) { |acc, _| [acc] }
      s = Igniter::Ledger.memory
      s.write(store: :v, key: "k", value: ok)
      expect(s.read(store: :v, key: "k")).to eq(ok)
    end
  end
end
