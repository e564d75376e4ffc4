# frozen_string_literal: true

require_relative "spec_helper"
require "rbconfig"

# Derived state through the gem, beyond the reference specs (those run through
# ../shared/upstream/run): bad input, failing rules, provenance, reopen, reconciliation
# and a kill -9 between a source write and its derived writes.
RSpec.describe "derived state (derivations, scatter, relations)" do
  L = Igniter::Ledger
  let(:store) { L::LedgerStore.new }
  let(:tmp_dir) { Dir.mktmpdir("derive") }
  let(:wal_path) { File.join(tmp_dir, "ledger.wal") }

  after { FileUtils.rm_rf(tmp_dir) }

  def count_rule
    ->(facts) { { count: facts.size } }
  end

  def no_trace(s)
    expect(s.fact_count).to eq(0)
    expect(s.schema_graph.derivation_snapshot).to eq([])
    expect(s.schema_graph.scatter_snapshot).to eq([])
  end

  describe "bad input" do
    it "refuses a non-callable rule, naming it, and registers nothing" do
      expect do
        store.register_derivation(source_store: :t, target_store: :s, target_key: "k", rule: 5)
      end.to raise_error(ArgumentError, /\Arule: must respond to #call, got Integer\z/)
      expect do
        store.register_scatter(source_store: :t, partition_by: :p, target_store: :s, rule: "x")
      end.to raise_error(ArgumentError, /rule: must respond to #call, got String/)
      store.write(store: :t, key: "a", value: { p: 1 })
      expect(store.fact_count).to eq(1)
      expect(store.schema_graph.derivation_snapshot).to eq([])
    end

    it "refuses missing or nil store arguments" do
      expect { store.register_derivation(target_store: :s, target_key: "k", rule: count_rule) }
        .to raise_error(ArgumentError, /missing keyword: :source_store/)
      expect { store.register_derivation(source_store: nil, target_store: :s, target_key: "k", rule: count_rule) }
        .to raise_error(TypeError, /source_store must be a Symbol or a String, got NilClass/)
      expect { store.register_scatter(source_store: :t, partition_by: nil, target_store: :s, rule: count_rule) }
        .to raise_error(ArgumentError, /partition_by must not be nil/)
      expect { store.register_relation(:r, source: :c, partition: :a) }
        .to raise_error(ArgumentError, /missing keyword: :target/)
      expect { store.register_derivation(source_store: "", target_store: :s, target_key: "k", rule: count_rule) }
        .to raise_error(ArgumentError, /source_store: store name must not be empty/)
      no_trace(store)
    end

    it "accepts a store that holds no facts yet" do
      calls = 0
      store.register_derivation(source_store: :later, target_store: :s, target_key: "k",
                                rule: ->(f) { calls += 1; { n: f.size } })
      expect(calls).to eq(0)
      store.write(store: :later, key: "a", value: 1)
      expect(store.read(store: :s, key: "k")).to eq(n: 1)
    end

    it "refuses a relation registered again under another definition, and accepts the same one" do
      store.register_relation(:rc, source: :comments, partition: :article_id, target: :articles)
      expect(store.register_relation(:rc, source: :comments, partition: :article_id, target: :articles)).to be(store)
      expect { store.register_relation(:rc, source: :comments, partition: :user_id, target: :users) }
        .to raise_error(ArgumentError, /relation :rc is already registered/)
      expect(store.schema_graph.relation_for(name: :rc).partition).to eq(:article_id)
      expect(store.schema_graph.scatter_snapshot.size).to eq(1)
      expect(store.fact_count).to eq(0)
    end

    it "raises ArgumentError naming an unknown relation" do
      expect { store.resolve(:nope, from: "x") }.to raise_error(ArgumentError, /\ANo relation registered as :nope/)
    end
  end

  describe "failing rules" do
    it "counts a raising rule and keeps the source write" do
      store.register_derivation(source_store: :t, target_store: :s, target_key: "k", rule: ->(_) { raise "boom" })
      store.register_scatter(source_store: :t, partition_by: :p, target_store: :u, rule: ->(*) { raise KeyError, "no" })
      f = nil
      f = store.write(store: :t, key: "a", value: { p: 1 })
      expect(store.read(store: :t, key: "a")).to eq(p: 1)
      expect(f.key).to eq("a")
      expect(store.derivation_failures).to eq(2)
      expect(store.last_derivation_failure).to match(/scatter t->u by :p: a scatter rule raised no/)
      expect(store.fact_count).to eq(1)
    end

    it "counts a result the ledger cannot store" do
      store.register_derivation(source_store: :t, target_store: :s, target_key: "k", rule: ->(_) { { at: Object.new } })
      store.write(store: :t, key: "a", value: 1)
      expect(store.derivation_failures).to eq(1)
      expect(store.last_derivation_failure).to match(/Object/)
      expect(store.read(store: :s, key: "k")).to be_nil
    end

    it "re-raises an exception that is not a StandardError after the write" do
      store.register_derivation(source_store: :t, target_store: :s, target_key: "k", rule: ->(_) { raise Interrupt })
      expect { store.write(store: :t, key: "a", value: 1) }.to raise_error(Interrupt)
      expect(store.read(store: :t, key: "a")).to eq(1)
    end

    it "does not cascade when a rule writes to the ledger itself" do
      calls = 0
      store.register_derivation(source_store: :t, target_store: :s, target_key: "k",
                                rule: lambda { |f|
                                  calls += 1
                                  store.write(store: :t, key: "side", value: calls)
                                  { n: f.size }
                                })
      store.write(store: :t, key: "a", value: 1)
      expect(calls).to eq(1)
      expect(store.read(store: :t, key: "side")).to eq(1)
    end
  end

  it "hands a derivation rule the current members, reusing unchanged Fact objects" do
    seen = []
    store.register_derivation(source_store: :t, source_filters: { on: true }, target_store: :s, target_key: "k",
                              rule: lambda { |facts|
                                seen << facts.dup
                                facts.clear # the rule's own copy
                                { n: seen.size }
                              })
    store.write(store: :t, key: "b", value: { on: true, v: 1 })
    store.write(store: :t, key: "a", value: { on: true, v: 2 })
    store.write(store: :t, key: "b", value: { on: true, v: 3 })
    store.write(store: :t, key: "c", value: { on: false })
    store.write(store: :t, key: "a", value: { on: false })
    expect(seen.map { |fs| fs.map { |f| [f.key, f.value[:v]] } }).to eq(
      [[["b", 1]], [["a", 2], ["b", 1]], [["a", 2], ["b", 3]], [["a", 2], ["b", 3]], [["b", 3]]]
    )
    expect(seen[2][0]).to be(seen[1][0]) # "a" unchanged: the same object
    expect(seen[2][1]).not_to be(seen[1][1]) # "b" changed
    expect(seen.last.first).to be(seen[3][1])
  end

  it "records provenance in derived facts" do
    store.register_derivation(source_store: :t, target_store: :s, target_key: "k", rule: count_rule)
    store.register_scatter(source_store: :t, partition_by: :p, target_store: :by_p, rule: ->(_pv, e, _f) { { n: (e ? e[:n] : 0) + 1 } })
    src = store.write(store: :t, key: "a", value: { p: "x" })
    d = store.read_fact(store: :s, key: "k").derivation
    expect(d).to include(kind: :derivation, trigger: src.id, inputs: 1, reconciled: false)
    expect(d[:input_digest]).to match(/\A\h{64}\z/)
    expect(store.read_fact(store: :by_p, key: "x").derivation).to include(kind: :scatter, sources: [src.id])
    # lineage keeps the reference's keys; derived_by lists the derivations of the store.
    l = store.lineage(store: :t, key: "a")
    expect(l.keys).to contain_exactly(:subject, :chain, :depth, :derived_by, :proof_hash)
    expect(l[:derived_by]).to eq([{ target_store: :s, target_key: "k", source_filters: {} }])
  end

  it "keeps rules alive across garbage collection" do
    store.register_derivation(source_store: :t, target_store: :s, target_key: ->(f) { "k#{f.size}" },
                              rule: ->(f) { { n: f.map(&:key) } })
    GC.start(full_mark: true, immediate_sweep: true)
    GC.compact if GC.respond_to?(:compact)
    store.write(store: :t, key: "a", value: 1)
    expect(store.read(store: :s, key: "k1")).to eq(n: ["a"])
    # Every object the rules get or make, under a GC at each allocation.
    store.register_scatter(source_store: :t, partition_by: :p, target_store: :sc,
                           rule: ->(pv, e, f) { { pv: pv, n: (e ? e[:n] : 0) + 1, last: f.key } })
    store.register_relation(:r, source: :t, partition: :p, target: :x)
    begin
      GC.stress = true
      6.times { |i| store.write(store: :t, key: "k#{i % 5}", value: { v: "v#{i}", p: "p#{i % 3}" }) }
    ensure
      GC.stress = false
    end
    expect(store.read(store: :s, key: "k6")).to eq(n: %w[a k0 k1 k2 k3 k4])
    expect(store.read(store: :sc, key: "p0")).to eq(pv: "p0", n: 2, last: "k3")
    expect(store.resolve(:r, from: "p1").size).to eq(2)
    expect(store.derivation_failures).to eq(0)
  end

  it "keeps relation indexes across reopen and answers as_of exactly" do
    t = nil
    L.open(wal_path) do |s|
      s.register_relation(:ac, source: :comments, partition: :article_id, target: :articles)
      s.write(store: :comments, key: "c1", value: { article_id: "a1", body: "one" })
      t = s.write(store: :other, key: "x", value: 1).transaction_time
      s.write(store: :comments, key: "c2", value: { article_id: "a1", body: "two" })
    end
    L.open(wal_path) do |s|
      n = s.fact_count
      s.register_relation(:ac, source: :comments, partition: :article_id, target: :articles)
      expect(s.fact_count).to eq(n)
      expect(s.resolve(:ac, from: "a1").map { |v| v[:body] }).to eq(%w[one two])
      expect(s.resolve(:ac, from: "a1", as_of: t)).to eq([{ article_id: "a1", body: "one" }])
    end
  end

  it "reconciles on registration over a store that already holds facts" do
    L.open(wal_path) do |s|
      3.times { |i| s.write(store: :t, key: "k#{i}", value: { p: i % 2 }) }
    end
    L.open(wal_path) do |s|
      s.register_derivation(source_store: :t, target_store: :s, target_key: "all", rule: count_rule)
      s.register_scatter(source_store: :t, partition_by: :p, target_store: :by_p,
                         rule: ->(_pv, e, _f) { { n: (e ? e[:n] : 0) + 1 } })
      expect(s.read(store: :s, key: "all")).to eq(count: 3)
      expect(s.read(store: :by_p, key: "0")).to eq(n: 2)
      expect(s.read(store: :by_p, key: "1")).to eq(n: 1)
      expect(s.read_fact(store: :s, key: "all").derivation).to include(reconciled: true)
    end
  end

  it "converges after kill -9 between source and derived writes" do
    writer = <<~RUBY
      $LOAD_PATH.unshift(#{REPO_LIB.inspect})
      require "igniter-ledger"
      s = Igniter::Ledger.open(ARGV[0], durability: :flush)
      eval(File.read(ARGV[1]))
      register(s)
      $stdout.sync = true
      puts "ready"
      i = s.fact_count
      loop { i += 1; s.write(store: :t, key: "k\#{i % 13}", value: { p: i % 3, n: i, open: i.even? }) }
    RUBY
    rules = <<~RUBY
      def register(s)
        s.register_derivation(source_store: :t, source_filters: { open: true }, target_store: :sum, target_key: "open",
                              rule: ->(f) { { count: f.size, total: f.sum { |x| x.value[:n] } } })
        s.register_scatter(source_store: :t, partition_by: :p, target_store: :by_p,
                           rule: ->(_pv, e, f) { { writes: (e ? e[:writes] : 0) + 1, sum: (e ? e[:sum] : 0) + f.value[:n] } })
        s.register_relation(:rp, source: :t, partition: :p, target: :ps)
      end
    RUBY
    rules_file = File.join(tmp_dir, "rules.rb")
    File.write(rules_file, rules)
    eval(rules) # rubocop:disable Security/Eval -- the same rules in this process
    3.times do
      IO.popen([RbConfig.ruby, "-e", writer, wal_path, rules_file], err: File::NULL) do |io|
        expect(io.gets).to eq("ready\n")
        sleep(0.05 + rand * 0.2)
        Process.kill(:KILL, io.pid)
      end
      L.open(wal_path) do |s|
        register(s)
        facts = s.history(store: :t)
        latest = facts.each_with_object({}) { |f, h| h[f.key] = f.value }.values.select { |v| v[:open] }
        expect(s.read(store: :sum, key: "open")).to eq(count: latest.size, total: latest.sum { |v| v[:n] })
        facts.group_by { |f| f.value[:p] }.each do |p, fs|
          expect(s.read(store: :by_p, key: p.to_s)).to eq(writes: fs.size, sum: fs.sum { |f| f.value[:n] })
          expect(s.resolve(:rp, from: p).size).to eq(fs.map(&:key).uniq.size)
        end
        expect(s.derivation_failures).to eq(0)
      end
    end
  end
end
