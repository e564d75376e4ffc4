# frozen_string_literal: true

require_relative "spec_helper"
require_relative "support/pg_cluster"
require "tmpdir"
require "fileutils"

# The PostgreSQL sync hub from Ruby (store.start_sync): the argument errors without a
# hub, then two file stores against a real throwaway PostgreSQL cluster (skipped, with
# the reason printed, when PostgreSQL is not installed): A pushes, B pulls.
RSpec.describe "store.start_sync (the PostgreSQL sync hub)" do
  def wait_for(timeout: 30, what: "the condition")
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    until yield
      raise "timed out waiting for #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.02
    end
  end

  describe "arguments" do
    let(:store) { Igniter::Ledger.memory }
    after { store.close }

    it "raises SyncArgumentError (an ArgumentError and a ledger error) naming hub: for a bad URL" do
      expect { store.start_sync(hub: "postgres://u@h:notaport/db", push: true) }
        .to raise_error(Igniter::Ledger::SyncArgumentError) { |e|
          expect(e).to be_a(ArgumentError)
          expect(Igniter::Ledger::Error === e).to be(true)
          expect(e.argument).to eq(:hub)
          expect(e.message).to start_with("hub:")
        }
      expect { store.start_sync(hub: 42) }.to raise_error(Igniter::Ledger::SyncArgumentError, /hub/)
    end

    it "raises SyncArgumentError when there is nothing to do or an origin is not a UUID" do
      expect { store.start_sync(hub: "postgres://u@127.0.0.1/db", push: false) }
        .to raise_error(Igniter::Ledger::SyncArgumentError, /nothing to do/)
      expect { store.start_sync(hub: "postgres://u@127.0.0.1/db", pull: [:a], origins: ["nope"]) }
        .to raise_error(Igniter::Ledger::SyncArgumentError) { |e| expect(e.argument).to eq(:origins) }
    end

    it "raises HubUnreachableError (a SyncError) naming hub: when nothing answers" do
      port = Addrinfo.tcp("127.0.0.1", 0).bind { |s| s.local_address.ip_port } # nothing listens there now
      expect { store.start_sync(hub: "postgres://postgres@127.0.0.1:#{port}/hub", push: true, connect_timeout: 0.3) }
        .to raise_error(Igniter::Ledger::HubUnreachableError) { |e|
          expect(e).to be_a(Igniter::Ledger::SyncError)
          expect(e).to be_a(Igniter::Ledger::Error)
          expect(e.argument).to eq(:hub)
          expect(e.message).to match(/hub: unreachable/)
        }
      expect(store.syncs).to be_empty
    end
  end

  describe "with a real PostgreSQL hub" do
    before(:all) do
      @pg = PgCluster.start
      @hub = @pg&.create_db("hub")
    end

    after(:all) { @pg&.stop }

    around do |ex|
      Dir.mktmpdir("igniter-sync-spec-") do |dir|
        @dir = dir
        ex.run
      end
    end

    def skip_without_pg
      skip "PostgreSQL is not installed (see the printed reason)" unless @pg
    end

    def write_some(store, from, count)
      prev = store.read_fact(store: :orders, key: "order-#{from - 1}")
      (from...(from + count)).map do |i|
        f = store.write(store: :orders, key: "order-#{i}", value: { n: i, tags: [:a, "b"], at: i * 1.5 },
                        causation: prev&.id)
        prev = f
        store.append(history: :events, event: { order: i, kind: :created }, partition_key: :order, causation: f.id)
        sleep 0.001 if i % 7 == 0 # spread the transaction times a little
        f
      end
    end

    def all_facts(store)
      store.changes.map(&:fact)
    end

    it "B pulls A's facts with identical ids, hashes, causation and as_of answers; a restart resumes without duplicates" do
      skip_without_pg
      a = Igniter::Ledger.open(File.join(@dir, "a.wal"))
      b = Igniter::Ledger.open(File.join(@dir, "b.wal"))
      seen = Queue.new
      b.register_path(Igniter::Ledger::AccessPath.new(store: :orders,
                                                      consumers: [->(store, key) { seen << [store, key, Thread.current] }]))
      written = write_some(a, 0, 40)
      times = written.map(&:transaction_time)

      push = a.start_sync(hub: @hub, push: true)
      pull = b.start_sync(hub: @hub, push: false, pull: %i[orders events])
      expect(pull.node).not_to eq(push.node)

      # Reads on B while facts arrive: they are committed on B's applier thread.
      reader = Thread.new do
        n = 0
        n += b.fact_count + (b.read(store: :orders, key: "order-3")&.fetch(:n) || 0) while pull.status[:pulled] < 80
        n
      end
      wait_for(what: "B to pull A's 80 facts") { pull.status[:pulled] == 80 }
      expect(reader.value).to be >= 0

      a_facts = all_facts(a)
      expect(a_facts.size).to eq(80)
      a_facts.each do |f|
        g = b.fact_by_id(f.id)
        expect(g).not_to be_nil, "B lacks #{f.store}/#{f.key}"
        expect([g.store, g.key, g.value, g.value_hash, g.causation, g.valid_time, g.transaction_time])
          .to eq([f.store, f.key, f.value, f.value_hash, f.causation, f.valid_time, f.transaction_time])
      end
      # B was empty: every origin transaction time is kept, so as_of answers as on A.
      [times[0], times[10], times[25], times[39]].each do |t|
        expect(b.read(store: :orders, key: "order-10", as_of: t)).to eq(a.read(store: :orders, key: "order-10", as_of: t))
        expect(b.history(store: :events, as_of: t).map(&:id)).to eq(a.history(store: :events, as_of: t).map(&:id))
      end
      # The consumer on B saw every pulled :orders fact, on a Ruby thread.
      wait_for(what: "B's consumer") { seen.size == 40 }
      got = Array.new(40) { seen.pop }
      expect(got.map { |s, k, _| [s, k] }.sort).to eq((0...40).map { |i| [:orders, "order-#{i}"] }.sort)
      expect(got.map(&:last)).to all(be_a(Thread))

      st = push.stop
      expect(st).to be_frozen
      expect(st).to include(running: false, pushed: 80, push_cursor: 80)
      expect(pull.stop).to include(running: false, pulled: 80)
      expect(pull.stop[:pulled]).to eq(80) # stop is idempotent
      expect(b.syncs).to be_empty

      # A writes more while nothing syncs; a second start resumes from the durable cursors.
      write_some(a, 40, 10)
      a.close
      b.close
      a = Igniter::Ledger.open(File.join(@dir, "a.wal"))
      b = Igniter::Ledger.open(File.join(@dir, "b.wal"))
      push = a.start_sync(hub: @hub, push: true)
      pull = b.start_sync(hub: @hub, push: false, pull: %i[orders events])
      expect(push.node).to eq(st[:node]) # the node id is kept in a.wal.sync
      wait_for(what: "B to pull the 20 new facts") { pull.status[:pulled] == 20 }
      sleep 0.3 # nothing more may come
      expect(push.stop).to include(pushed: 20, push_cursor: 100)
      expect(pull.stop).to include(pulled: 20)
      expect(b.fact_count).to eq(100)
      all_facts(a).each { |f| expect(b.fact_by_id(f.id)&.value_hash).to eq(f.value_hash) }

      total, distinct = @pg.query("hub", "SELECT count(*), count(DISTINCT fact_id) FROM igniter_hub.facts").first
      expect([total.to_i, distinct.to_i]).to eq([100, 100])
    ensure
      a&.close unless a&.closed?
      b&.close unless b&.closed?
    end

    it "bootstraps an empty store before returning, then follows; closing the store stops its sync" do
      skip_without_pg
      db = @pg.create_db("boot")
      a = Igniter::Ledger.open(File.join(@dir, "a.wal"))
      write_some(a, 0, 25)
      a.start_sync(hub: db, push: true).stop
      c = Igniter::Ledger.memory
      sync = c.start_sync(hub: db, push: false, bootstrap: [:orders])
      # Returned after the bootstrap: the facts are in already.
      expect(sync.status).to include(bootstrapped: 25, pulled: 25, running: true)
      expect(c.fact_count).to eq(25)
      expect(c.read(store: :orders, key: "order-24")).to eq(a.read(store: :orders, key: "order-24"))
      expect(c.history(store: :events)).to be_empty # not subscribed
      a.start_sync(hub: db, push: true)
      a.write(store: :orders, key: "late", value: 1)
      wait_for(what: "the follow-up pull") { c.read(store: :orders, key: "late") == 1 }
      c.close
      expect(sync.running?).to be(false)
      expect(c.syncs).to be_empty
    ensure
      a&.close unless a&.closed?
      c&.close unless c&.closed?
    end
  end
end
