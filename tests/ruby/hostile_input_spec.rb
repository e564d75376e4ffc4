# frozen_string_literal: true

require_relative "spec_helper"
require "bigdecimal"
require "date"
require "ostruct"
require "set"

# Hostile input catalogue, Ruby API (issue 5, item 5). Each refusal asserts the exact
# exception class, a fragment of its message, and that nothing was written: the fact
# count and the WAL size of a file-backed store are unchanged, and the earlier fact still
# reads back. values_spec.rb holds the first part of the catalogue (Time, Object, Proc,
# Struct, Rational, out-of-range Integers, invalid UTF-8, foreign encodings, bad hash
# keys, cycles, 200-deep arrays — each through write, append, producer and a batch);
# api_spec.rb and concurrency_spec.rb hold a few argument checks. This file adds the rest.
module HostileSpec
  Point = Struct.new(:x, :y)
  class Money < Numeric; end

  # Answers every implicit conversion Ruby knows; the ledger must call none of them.
  class Impostor
    def to_str = "str"
    def to_sym = :sym
    def to_hash = { a: 1 }
    def to_ary = [1]
    def to_int = 1
    def to_f = 1.0
  end
end

RSpec.describe "hostile input" do
  L = Igniter::Ledger unless defined?(L)
  LIMIT = 64 * 1024 * 1024
  TOO_LARGE = /\Avalue encodes to (more than )?\d+ bytes; the limit is #{LIMIT}\z/.freeze
  SUPPORTED = "(a ledger value may hold nil, true, false, Integer, Float, String, Symbol, Array and Hash)"

  before do
    @store = L.open(wal_path, durability: :flush)
    @before = @store.write(store: :v, key: "k", value: :before)
  end

  after { @store.close }

  # Expects the block to raise exactly `klass` with a message matching `message`, and
  # that it wrote nothing.
  def refuses(klass, message, store: @store)
    count = store.fact_count
    size = File.size(wal_path)
    raised = nil
    expect { yield store }.to raise_error(klass) { |e| raised = e }
    expect(raised.class).to eq(klass), "expected exactly #{klass}, got #{raised.class}: #{raised.message}"
    expect(raised.message).to match(message)
    expect(store.fact_count).to eq(count), "something was written"
    expect(File.size(wal_path)).to eq(size), "the WAL grew"
    expect(store.read(store: :v, key: "k")).to eq(:before)
    raised
  end

  describe "unsupported types" do
    # Every one of these is refused as a value, inside a container (naming the path), as
    # a producer/derivation, as an event, and inside a batch (naming the operation).
    # A Float subclass cannot be instantiated in Ruby (Float has no allocator), so
    # Numeric subclasses stand in for "numbers that are not Integer or Float".
    {
      "a Range" => [1..2, "a Range"],
      "an endless Range" => [(1..), "a Range"],
      "a Set" => [Set[1, 2], "a Set"],
      "a Complex" => [Complex(1, 2), "a Complex"],
      "a BigDecimal" => [BigDecimal("1.5"), "a BigDecimal"],
      "a Numeric subclass" => [HostileSpec::Money.new, "a HostileSpec::Money"],
      "a named Struct" => [HostileSpec::Point.new(1, 2), "a HostileSpec::Point"],
      "an OpenStruct" => [OpenStruct.new(a: 1), "an OpenStruct"],
      "a Date" => [Date.new(2024, 1, 1), "a Date"],
      "an object answering every implicit conversion" => [HostileSpec::Impostor.new, "a HostileSpec::Impostor"],
      "a BasicObject" => [BasicObject.new, "a BasicObject"],
      "a Method" => [1.method(:+), "a Method"],
      "a Class" => [String, "a Class"],
      "a Module" => [Kernel, "a Module"],
      "an IO" => [$stderr, "an IO"],
      "an exception" => [RuntimeError.new("boom"), "a RuntimeError"],
      "an Enumerator" => [[1].each, "an Enumerator"],
      "a Thread" => [Thread.current, "a Thread"],
      "an Encoding" => [Encoding::UTF_8, "an Encoding"],
      "a ledger Fact" => [Igniter::Ledger::Fact.build(store: :s, key: "k", value: 1), "an Igniter::Store::Fact"]
    }.each do |name, (value, noun)|
      it "refuses #{name} everywhere a value goes, naming where, writing nothing" do
        what = Regexp.escape(noun)
        refuses(TypeError, /\Avalue is #{what} #{Regexp.escape(SUPPORTED)}\z/) { |s| s.write(store: :v, key: "k", value: value) }
        refuses(TypeError, /\Avalue\[:meta\]\[1\]\["at"\] is #{what} /) do |s|
          s.write(store: :v, key: "k", value: { meta: [0, { "at" => value }] })
        end
        refuses(TypeError, /\Aevent\[:x\] is #{what} /) { |s| s.append(history: :h, event: { x: value }) }
        refuses(TypeError, /\Aproducer is #{what} /) { |s| s.write(store: :v, key: "k", value: 1, producer: value) }
        refuses(TypeError, /\Aderivation\[0\] is #{what} /) { |s| s.write(store: :v, key: "k", value: 1, derivation: [value]) }
        refuses(TypeError, /\Abatch operation 3: event is #{what} /) do |s|
          s.transaction do |tx|
            tx.write(store: :v, key: "k", value: 1)
            tx.write(store: :v, key: "k2", value: 2)
            tx.append(history: :h, event: value)
          end
        end
        refuses(TypeError, /\Abatch operation 1: value\[:x\] is #{what} /) { |s| s.write_batch([{ store: :v, key: "k", value: { x: value } }]) }
      end
    end

    it "refuses unsupported hash keys, naming the container" do
      refuses(TypeError, /\Avalue\[:a\] has an Array key \(hash keys must be Symbols, UTF-8 Strings or 64-bit Integers\)\z/) do |s|
        s.write(store: :v, key: "k", value: { a: { [1] => 2 } })
      end
      refuses(TypeError, /\Avalue has a TrueClass key/) { |s| s.write(store: :v, key: "k", value: { true => 1 }) }
      refuses(TypeError, /\Avalue has a Set key/) { |s| s.write(store: :v, key: "k", value: { Set[1] => 1 }) }
      refuses(TypeError, /\Avalue has a HostileSpec::Impostor key/) { |s| s.write(store: :v, key: "k", value: { HostileSpec::Impostor.new => 1 }) }
    end

    it "refuses a hash holding the same String key twice (compare_by_identity)" do
      h = {}.compare_by_identity
      h[+"a"] = 1
      h[+"a"] = 2
      refuses(ArgumentError, /\Avalue has the key "a" twice\z/) { |s| s.write(store: :v, key: "k", value: h) }
    end

    it "reads Hash subclasses without calling their overridden methods" do
      sneaky = Class.new(Hash) do
        def each(*) = raise("each called")
        def each_pair(*) = raise("each_pair called")
        def keys = raise("keys called")
        def [](*) = raise("[] called")
      end
      h = sneaky.new
      h.store(:a, 1)
      expect(@store.write(store: :v, key: "s", value: h).value).to eq(a: 1)
    end

    it "refuses unsupported partition values, filter values and partition keys" do
      refuses(TypeError, /\Apartition_value is a Set /) do |s|
        s.history_partition(store: :h, partition_key: :p, partition_value: Set[1])
      end
      refuses(TypeError, /\Apartition_key is a HostileSpec::Impostor \(hash keys must be/) do |s|
        s.append(history: :h, event: { p: 1 }, partition_key: HostileSpec::Impostor.new)
      end
      refuses(TypeError, /\Afilters\[:a\] is a Range /) do |s|
        s.register_path(L::AccessPath.new(store: :v, scope: :x, filters: { a: 1..2 }))
      end
      expect(@store.schema_graph[:paths]).to eq([])
    end
  end

  describe "nesting and cycles" do
    def nest(levels, &wrap)
      levels.times.reduce(1) { |acc, _| wrap.call(acc) }
    end

    it "accepts 128 levels of hashes and refuses 129, naming the path" do
      expect(@store.write(store: :v, key: "deep", value: nest(127) { |x| { a: x } }).value.dig(*[:a] * 127)).to eq(1)
      refuses(ArgumentError, /\Avalue(\[:a\]){128} nests deeper than 128 levels\z/) do |s|
        s.write(store: :v, key: "k", value: nest(128) { |x| { a: x } })
      end
      refuses(ArgumentError, /nests deeper than 128 levels/) do |s|
        s.write(store: :v, key: "k", value: nest(128) { |x| x.is_a?(Array) ? { a: x } : [x] })
      end
    end

    it "refuses 100,000 levels without exhausting the stack, with a bounded message" do
      e = refuses(ArgumentError, /nests deeper than 128 levels\z/) do |s|
        s.write(store: :v, key: "k", value: nest(100_000) { |x| [x] })
      end
      expect(e.message.bytesize).to be < 1_000
      refuses(ArgumentError, /\Aproducer(\[0\]){128} nests deeper/) { |s| s.write(store: :v, key: "k", value: 1, producer: nest(300) { |x| [x] }) }
    end

    it "refuses cycles through mixed containers and in every value slot" do
      a = []
      h = { list: a }
      a << 1 << h
      refuses(ArgumentError, /\Avalue\[1\]\[:list\] is a cyclic reference \(the structure contains itself\)\z/) do |s|
        s.write(store: :v, key: "k", value: a)
      end
      refuses(ArgumentError, /\Aderivation\[:list\]\[1\] is a cyclic reference/) { |s| s.write(store: :v, key: "k", value: 1, derivation: h) }
      refuses(ArgumentError, /\Aevent\[:list\]\[1\] is a cyclic reference/) { |s| s.append(history: :h, event: h) }
    end

    it "refuses a small structure that shares itself into an enormous tree, early" do
      # 30 levels of [x, x] over a 100-byte String: 31 Ruby objects that would write out
      # as 2**30 Strings (100 GiB). Conversion stops once the lower bound of the encoded
      # size passes the 64 MiB limit, instead of building the tree first.
      bomb = 30.times.reduce("b" * 100) { |x, _| [x, x] }
      refuses(ArgumentError, TOO_LARGE) { |s| s.write(store: :v, key: "k", value: bomb) }
      hash_bomb = 30.times.reduce("h" * 100) { |x, _| { l: x, r: x } }
      refuses(ArgumentError, /\Aevent encodes to more than #{LIMIT} bytes; the limit is #{LIMIT}\z/) do |s|
        s.append(history: :h, event: hash_bomb)
      end
    end
  end

  describe "sizes beyond the limits (64 MiB per value, 64 KiB per key, 1 KiB per store name)" do
    it "refuses a value over 64 MiB: one String, many shared Strings, a long Array of Strings" do
      refuses(ArgumentError, TOO_LARGE) { |s| s.write(store: :v, key: "k", value: "x" * (LIMIT + 1)) }
      mib = "y" * (1 << 20)
      refuses(ArgumentError, TOO_LARGE) { |s| s.write(store: :v, key: "k", value: Array.new(65, mib)) }
      refuses(ArgumentError, TOO_LARGE) { |s| s.write(store: :v, key: "k", value: { mib => Array.new(64, mib) }) }
      refuses(ArgumentError, /\Abatch operation 2: producer encodes to/) do |s|
        s.transaction do |tx|
          tx.write(store: :v, key: "k", value: 1)
          tx.write(store: :v, key: "k", value: 2, producer: Array.new(65, mib))
        end
      end
    end

    it "refuses a value whose encoding is just over the limit, and accepts one just under" do
      # 65,536 Integers of 1,024 bytes' worth each would be too slow to build; strings
      # near the limit check the core's exact size test (a String has a 5-byte header).
      refuses(ArgumentError, /\Avalue encodes to #{LIMIT + 3} bytes; the limit is #{LIMIT}\z/) { |s| s.write(store: :v, key: "k", value: "z" * (LIMIT - 2)) }
      memory = L.memory
      big = "z" * (LIMIT - 5)
      expect(memory.write(store: :v, key: "k", value: big).value.bytesize).to eq(LIMIT - 5)
    end

    it "refuses keys over 64 KiB and store names over 1 KiB, and accepts them at the limit" do
      refuses(ArgumentError, /\Akey is 65537 bytes; the limit is 65536\z/) { |s| s.write(store: :v, key: "k" * 65_537, value: 1) }
      refuses(ArgumentError, /\Astore name is 1025 bytes; the limit is 1024\z/) { |s| s.write(store: "s" * 1025, key: "k", value: 1) }
      refuses(ArgumentError, /\Astore name is 1025 bytes/) { |s| s.append(history: :"#{"h" * 1025}", event: 1) }
      refuses(ArgumentError, /key is 65537 bytes/) do |s|
        s.transaction do |tx|
          tx.write(store: :v, key: "ok", value: 1)
          tx.write(store: :v, key: "k" * 65_537, value: 1)
        end
      end
      expect(@store.write(store: "s" * 1024, key: "k" * 65_536, value: 1).key.bytesize).to eq(65_536)
      expect(@store.read(store: :v, key: "q" * 1_000_000)).to be_nil # reads of absurd keys just miss
    end
  end

  describe "strings that are not UTF-8" do
    bad = "ok\xFF".dup.force_encoding("UTF-8")

    it "refuses invalid UTF-8 in store names, keys, hash keys, partition keys and values" do
      refuses(ArgumentError, /\Astore is a String with invalid UTF-8\z/) { |s| s.write(store: bad, key: "k", value: 1) }
      refuses(ArgumentError, /\Akey is a String with invalid UTF-8\z/) { |s| s.write(store: :v, key: bad, value: 1) }
      refuses(ArgumentError, /\Ahistory is a String with invalid UTF-8\z/) { |s| s.append(history: bad, event: 1) }
      refuses(ArgumentError, /\Avalue has a String with invalid UTF-8 \(byte offset 2; .*\) key/) do |s|
        s.write(store: :v, key: "k", value: { bad => 1 })
      end
      refuses(ArgumentError, /\Apartition_key is a String with invalid UTF-8/) do |s|
        s.append(history: :h, event: { "p" => 1 }, partition_key: bad)
      end
      refuses(ArgumentError, /\Avalue\[0\] is a String with invalid UTF-8 \(byte offset 2; binary data belongs in an ASCII-8BIT string/) do |s|
        s.write(store: :v, key: "k", value: [bad])
      end
      refuses(ArgumentError, /\Avalue is a String in UTF-16LE \(the ledger stores UTF-8 and binary ASCII-8BIT strings/) do |s|
        s.write(store: :v, key: "k", value: "hi".encode("UTF-16LE"))
      end
      refuses(ArgumentError, /\Ascope is a String with invalid UTF-8\z/) do |s|
        s.query(store: :v, scope: bad)
      end
    end

    it "keeps the same bytes as binary (ASCII-8BIT) data" do
      f = @store.write(store: :v, key: "bin", value: { raw: bad.b })
      expect(f.value[:raw].encoding).to eq(Encoding::BINARY)
      expect(f.value[:raw]).to eq("ok\xFF".b)
    end
  end

  describe "Integers beyond 64 bits" do
    it "refuses them as values, hash keys and schema versions" do
      refuses(RangeError, /\Avalue is an Integer out of range \(the ledger stores 64-bit signed integers\)\z/) do |s|
        s.write(store: :v, key: "k", value: 2**63)
      end
      refuses(RangeError, /\Avalue\[:n\]\[0\] is an Integer out of range/) { |s| s.write(store: :v, key: "k", value: { n: [-(2**63) - 1] }) }
      refuses(RangeError, /\Avalue has an Integer out of the 64-bit signed range key/) { |s| s.write(store: :v, key: "k", value: { 2**63 => 1 }) }
      refuses(RangeError, /\Aschema_version 4294967296 is out of range \(0\.\.4294967295\)\z/) { |s| s.write(store: :v, key: "k", value: 1, schema_version: 2**32) }
      refuses(RangeError, /\Aschema_version 1180591620717411303424 is out of range/) { |s| s.append(history: :h, event: 1, schema_version: 2**70) }
      expect(@store.write(store: :v, key: "edge", value: [2**63 - 1, -(2**63)]).value).to eq([2**63 - 1, -(2**63)])
    end
  end

  describe "NaN and Infinity" do
    # Decision: as values they are ordinary Floats (stored and read back bit for bit);
    # as a valid time they are refused — a valid time must be a finite instant; as read
    # bounds NaN is refused and ±Infinity means "everything" / "nothing".
    it "stores NaN and ±Infinity as values and reads them back, also after reopen" do
      @store.write(store: :v, key: "f", value: { nan: Float::NAN, inf: Float::INFINITY, ninf: -Float::INFINITY })
      @store.close
      L.open(wal_path) do |s|
        v = s.read(store: :v, key: "f")
        expect(v[:nan]).to be_nan
        expect(v[:inf]).to eq(Float::INFINITY)
        expect(v[:ninf]).to eq(-Float::INFINITY)
      end
      @store = L.open(wal_path, durability: :flush)
    end

    it "refuses them as valid_time (and term) everywhere a fact is made" do
      refuses(ArgumentError, /\Avalid_time is NaN\z/) { |s| s.write(store: :v, key: "k", value: 1, valid_time: Float::NAN) }
      refuses(ArgumentError, /\Avalid_time must be a finite number of seconds, got Infinity\z/) do |s|
        s.write(store: :v, key: "k", value: 1, valid_time: Float::INFINITY)
      end
      refuses(ArgumentError, /\Avalid_time must be a finite number of seconds, got -Infinity\z/) do |s|
        s.append(history: :h, event: 1, term: -Float::INFINITY)
      end
      refuses(ArgumentError, /\Abatch operation 2: valid_time must be a finite number/) do |s|
        s.transaction do |tx|
          tx.write(store: :v, key: "k", value: 1)
          tx.append(history: :h, event: 1, valid_time: Float::INFINITY)
        end
      end
      expect { L::Fact.build(store: :v, key: "k", value: 1, valid_time: Float::NAN) }.to raise_error(ArgumentError, /valid_time is NaN/)
    end

    it "refuses NaN as a read bound; ±Infinity bounds mean everything / nothing" do
      refuses(ArgumentError, /\Aas_of is NaN\z/) { |s| s.read(store: :v, key: "k", as_of: Float::NAN) }
      refuses(ArgumentError, /\Asince is NaN\z/) { |s| s.history(store: :v, since: Float::NAN) }
      refuses(ArgumentError, /\Avalid_at is NaN\z/) { |s| s.read(store: :v, key: "k", valid_at: Float::NAN) }
      refuses(ArgumentError, /\Aas_of is NaN\z/) { |s| s.fact_log_all(as_of: Float::NAN) }
      refuses(ArgumentError, /\Acache_ttl is NaN\z/) { |s| s.register_path(L::AccessPath.new(store: :v, cache_ttl: Float::NAN)) }
      expect(@store.read(store: :v, key: "k", as_of: Float::INFINITY)).to eq(:before)
      expect(@store.read(store: :v, key: "k", as_of: -Float::INFINITY)).to be_nil
      expect(@store.history(store: :v, since: Float::INFINITY)).to eq([])
      expect(@store.history(store: :v, since: -Float::INFINITY).size).to eq(1)
    end
  end

  describe "arguments of the wrong type" do
    it "names the argument and the class it got" do
      refuses(TypeError, /\Astore must be a Symbol or a String, got Integer\z/) { |s| s.write(store: 123, key: "k", value: 1) }
      refuses(TypeError, /\Akey must be a Symbol or a String, got NilClass\z/) { |s| s.write(store: :v, key: nil, value: 1) }
      refuses(TypeError, /\Akey must be a Symbol or a String, got HostileSpec::Impostor\z/) do |s|
        s.write(store: :v, key: HostileSpec::Impostor.new, value: 1)
      end
      refuses(TypeError, /\Ahistory must be a Symbol or a String, got Array\z/) { |s| s.append(history: [:h], event: 1) }
      refuses(TypeError, /\Aas_of must be a number of seconds since the epoch \(Float, Integer\) or a Time, got String\z/) do |s|
        s.read(store: :v, key: "k", as_of: "x")
      end
      refuses(TypeError, /\Asince must be a number of seconds .* got Symbol\z/) { |s| s.history(store: :v, since: :yesterday) }
      refuses(TypeError, /\Avalid_at must be a number of seconds .* got Date\z/) { |s| s.read(store: :v, key: "k", valid_at: Date.today) }
      refuses(TypeError, /\Avalid_time must be a number of seconds .* got String\z/) { |s| s.append(history: :h, event: 1, valid_time: "now") }
      refuses(RangeError, /\Aschema_version -1 is out of range \(0\.\.4294967295\)\z/) { |s| s.write(store: :v, key: "k", value: 1, schema_version: -1) }
      refuses(TypeError, /\Aschema_version must be an Integer, got Float\z/) { |s| s.write(store: :v, key: "k", value: 1, schema_version: 1.5) }
      refuses(TypeError, /\Acausation must be a fact id \(String\) or a Fact, got Integer\z/) { |s| s.write(store: :v, key: "k", value: 1, causation: 123) }
      refuses(ArgumentError, /\Acausation "nope" is not a fact id\z/) { |s| s.append(history: :h, event: 1, causation: "nope") }
      refuses(TypeError, /\Ascope must be a Symbol or a String, got Integer\z/) { |s| s.query(store: :v, scope: 1) }
      refuses(TypeError, /\Astore must be a Symbol or a String, got NilClass\z/) do |s|
        s.history_partition(store: nil, partition_key: :p, partition_value: 1)
      end
    end

    it "keeps the class of a refused batch operation's error and names the operation" do
      refuses(TypeError, /\Abatch operation 2: key must be a Symbol or a String, got NilClass\z/) do |s|
        s.transaction do |tx|
          tx.write(store: :v, key: "k", value: 1)
          tx.write(store: :v, key: nil, value: 1)
        end
      end
    end

    it "refuses bad options of open without creating the file" do
      path = wal_path("never.wal")
      expect { L.open(path, durability: :bogus) }.to raise_error(ArgumentError, 'durability must be :fsync, :flush or :none, got "bogus"')
      expect { L.open(path, durability: nil) }.to raise_error(ArgumentError, /durability must be :fsync, :flush or :none, got ""/)
      expect { L.open(path, read_cache: "x") }.to raise_error(ArgumentError, 'read_cache: must be a non-negative Integer, got "x"')
      expect { L.open(path, lru_cap: -1) }.to raise_error(ArgumentError, /read_cache: must be a non-negative Integer, got -1/)
      expect { L.open(nil) }.to raise_error(TypeError, "path must be a String or Pathname, got NilClass")
      expect { L.open(:sym) }.to raise_error(TypeError, "path must be a String or Pathname, got Symbol")
      expect { L.open("#{path}\0.evil") }.to raise_error(ArgumentError, /\Apath must not contain a NUL byte/)
      expect { L::LedgerStore.new(backend: L::FileBackend.new(path, durability: :sometimes)) }.to raise_error(ArgumentError, /durability/)
      expect { L::LedgerStore.new(backend: "path.wal") }.to raise_error(ArgumentError, /backend: must be nil .* got String/)
      expect(File.exist?(path)).to be(false)
      expect(Dir.children(tmp_dir).sort).to eq(["ledger.wal"])
    end

    it "refuses malformed registrations and batches, writing and registering nothing" do
      refuses(TypeError, /\Aregister_path needs an Igniter::Ledger::AccessPath, got String\z/) { |s| s.register_path("x") }
      expect { L::AccessPath.new(store: :v, filters: []) }.to raise_error(TypeError, "filters must be a Hash, got Array")
      refuses(TypeError, /\Aconsumers\[0\] must respond to #call\z/) { |s| s.register_path(L::AccessPath.new(store: :v, consumers: [1])) }
      refuses(TypeError, /\Aa coercion must respond to #call\z/) { |s| s.register_coercion(:v, 5) }
      refuses(ArgumentError, /\Aregister_coercion needs a block or a callable\z/) { |s| s.register_coercion(:v) }
      refuses(TypeError, /\Awrite_batch operation 2 is not a Hash\z/) { |s| s.write_batch([{ store: :v, key: "a", value: 1 }, 1]) }
      refuses(ArgumentError, /\Amissing keywords: :key, :value\z/) { |s| s.write_batch([{ store: :v, key: "a", value: 1 }, { store: :v }]) }
      refuses(ArgumentError, /\Atransaction needs a block\z/, &:transaction)
      expect(@store.schema_graph.to_h).to include(paths: [], coercions: [])
      expect(@store.schema_graph.metadata_snapshot).to eq({})
      expect(@store.read(store: :v, key: "k")).to eq(:before) # no coercion was registered
    end

    it "refuses positional arguments and unknown keywords (Ruby's own ArgumentError)" do
      refuses(ArgumentError, /\Awrong number of arguments \(given 3, expected 0; required keywords: store, key, value\)\z/) do |s|
        s.write(:v, "k", 1)
      end
      refuses(ArgumentError, /\Aunknown keyword: :partition\z/) { |s| s.append(history: :h, event: 1, partition: :p) }
      refuses(ArgumentError, /\Aunknown keyword: :at\z/) { |s| s.read(store: :v, key: "k", at: 1.0) }
    end
  end

  describe "missing keywords" do
    {
      "write" => [:write, { store: :v }, "missing keywords: :key, :value"],
      "append" => [:append, { event: 1 }, "missing keyword: :history"],
      "read" => [:read, { store: :v }, "missing keyword: :key"],
      "read_fact" => [:read_fact, { key: "k" }, "missing keyword: :store"],
      "time_travel" => [:time_travel, { store: :v, key: "k" }, "missing keyword: :at"],
      "history" => [:history, {}, "missing keyword: :store"],
      "history_partition" => [:history_partition, { store: :h, partition_key: :p }, "missing keyword: :partition_value"],
      "query" => [:query, { store: :v }, "missing keyword: :scope"],
      "causation_chain" => [:causation_chain, { key: "k" }, "missing keyword: :store"],
      "lineage" => [:lineage, { store: :v }, "missing keyword: :key"]
    }.each do |name, (method, kwargs, message)|
      it "raises Ruby's ArgumentError for #{name} without its required keywords" do
        refuses(ArgumentError, /\A#{Regexp.escape(message)}\z/) { |s| s.public_send(method, **kwargs) }
      end
    end

    it "raises them from Fact.build, AccessPath.new and inside a transaction (nothing committed)" do
      expect { L::Fact.build(store: :v, key: "k") }.to raise_error(ArgumentError, "missing keyword: :value")
      expect { L::AccessPath.new(scope: :x) }.to raise_error(ArgumentError, "missing keyword: :store")
      refuses(ArgumentError, /\Amissing keyword: :event\z/) do |s|
        s.transaction do |tx|
          tx.write(store: :v, key: "k", value: 1)
          tx.append(history: :h)
        end
      end
    end
  end

  describe "unknown stores, keys, scopes and ids" do
    it "answers empty for stores and keys never written, creating nothing" do
      expect(@store.read(store: :ghost, key: "k")).to be_nil
      expect(@store.read_fact(store: :v, key: "ghost")).to be_nil
      expect(@store.history(store: :ghost)).to eq([])
      expect(@store.history(store: :v, key: "ghost")).to eq([])
      expect(@store.history_partition(store: :ghost, partition_key: :p, partition_value: 1)).to eq([])
      expect(@store.causation_chain(store: :ghost, key: "k")).to eq([])
      expect(@store.lineage(store: :ghost, key: "k")).to eq(subject: { store: :ghost, key: "k" }, chain: [], depth: 0,
                                                             derived_by: [], proof_hash: nil)
      expect(@store.schema_graph.to_h).to include(stores: [:v], partitions: [])
    end

    it "answers nil for unknown, malformed and blank fact ids" do
      [nil, "", "   ", "nope", 123, :sym, "01a2151d-197d-7cf5-b0d4-1b02476558b0", @before.id.upcase.sub(/.\z/) { |c| c == "0" ? "1" : "0" }].each do |id|
        expect(@store.fact_by_id(id)).to be_nil, "fact_by_id(#{id.inspect})"
        expect(@store.fact_ref(id)).to be_nil, "fact_ref(#{id.inspect})"
      end
    end

    it "raises UnknownScopeError for a scope registered only on another store, writing nothing" do
      @store.register_path(L::AccessPath.new(store: :other, scope: :open, filters: { status: :open }))
      e = refuses(L::UnknownScopeError, /\Aunknown scope: store=:v scope=:open \(register an access path first\)\z/) do |s|
        s.query(store: :v, scope: :open)
      end
      expect([e.store, e.scope]).to eq(%i[v open])
      expect(e).to be_a(ArgumentError)
      expect(@store.query(store: :other, scope: :open)).to eq([])
    end
  end

  describe "a second open, in this process, of an open ledger" do
    it "shares the first handle's ledger however the path is spelled, changing nothing, and the first handle keeps working" do
      link = wal_path("symlink.wal")
      hard = wal_path("hardlink.wal")
      File.symlink(wal_path, link)
      File.link(wal_path, hard)
      size = File.size(wal_path)
      [wal_path, link, hard, File.join(tmp_dir, ".", "ledger.wal"), File.join(tmp_dir, "..", File.basename(tmp_dir), "ledger.wal")].each do |p|
        [L.open(p), L.open(p, recover: true, durability: :none), L::LedgerStore.new(backend: L::FileBackend.new(p))].each do |second|
          expect(second.read(store: :v, key: "k")).to eq(@store.read(store: :v, key: "k"))
          expect(second.fact_count).to eq(@store.fact_count)
          second.close
          expect(second).to be_closed
          expect { second.write(store: :v, key: "x", value: 1) }.to raise_error(L::ClosedError)
          expect(@store).not_to be_closed
        end
      end
      expect(File.size(wal_path)).to eq(size)
      expect(Dir.children(tmp_dir).sort).to eq(%w[hardlink.wal ledger.wal symlink.wal])
      after = @store.write(store: :v, key: "k", value: :after)
      expect(after.causation).to eq(@before.id)
      @store.close
      L.open(link) { |s| expect(s.read(store: :v, key: "k")).to eq(:after) }
      @store = L.open(wal_path, durability: :flush)
    end
  end
end
