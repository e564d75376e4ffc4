# frozen_string_literal: true

require_relative "spec_helper"

# Ruby thread stress on one fsync-mode file store (issue 5, item 6): writer threads on
# shared hot keys, transaction threads, optimistic-concurrency counters, readers of
# every kind and a checkpointing thread, all at once. Readers record what they saw and
# the checks run after the threads are joined (an `expect` inside a thread would only
# kill that thread).
#
# Invariants: commit order is transaction-time order; no fact lost or duplicated (the
# facts the callers got back are exactly the log); every transaction is contiguous in the
# log and was never seen half by a reader; causation chains intact per key; no lost
# update through `expected:`; the ledger reopens (from a snapshot plus WAL tail) to
# exactly the same facts.
RSpec.describe "Ruby threads hammering one fsync-mode file store" do
  L = Igniter::Ledger unless defined?(L)
  # STRESS_SCALE=10 for a longer run.
  SCALE = Integer(ENV.fetch("STRESS_SCALE", "1"))
  WRITERS = 3
  WRITES = 150 * SCALE
  TRANSACTORS = 2
  TRANSACTIONS = 40 * SCALE
  COUNTERS = 3
  INCREMENTS = 25 * SCALE
  APPENDS = 60 * SCALE
  READERS = 2
  HOT = 4

  def chain_ok?(facts)
    facts.first.causation.nil? && facts.each_cons(2).all? { |a, b| b.causation == a.id }
  end

  it "keeps order, causation, atomicity and every fact, and reopens identically" do
    store = L.open(wal_path) # durability: :fsync
    done = false
    problems = Queue.new # what readers saw that they must not have

    writers = Array.new(WRITERS) do |w|
      Thread.new do
        Array.new(WRITES) do |i|
          key = i.even? ? "hot-#{i % HOT}" : "own-#{w}"
          store.write(store: :hot, key: key, value: { w: w, i: i })
        end
      end
    end

    transactors = Array.new(TRANSACTORS) do |t|
      Thread.new do
        Array.new(TRANSACTIONS) do |n|
          tag = "t#{t}-#{n}"
          size = 2 + (n % 4)
          store.transaction do |tx|
            tx.write(store: :pairs, key: "pair-x", value: { batch: tag })
            size.times { |i| tx.append(history: :events, event: { order: "o#{i % 3}", batch: tag, size: size, i: i }, partition_key: :order) }
            tx.write(store: :hot, key: "hot-#{n % HOT}", value: { batch: tag })
            tx.write(store: :pairs, key: "pair-y", value: { batch: tag })
          end
        end
      end
    end

    # Single appends with a partition key (the partition cache files the returned Facts).
    appenders = Array.new(2) do |t|
      Thread.new do
        Array.new(APPENDS) do |i|
          store.append(history: :events, event: { order: "o#{i % 3}", batch: "a#{t}-#{i}", size: 1, i: 0 }, partition_key: :order)
        end
      end
    end

    counters = Array.new(COUNTERS) do
      Thread.new do
        conflicts = 0
        INCREMENTS.times do
          loop do
            current = store.read_fact(store: :counter, key: "c")
            store.write(store: :counter, key: "c", value: (current ? current.value : 0) + 1, expected: current)
            break
          rescue L::ConflictError
            conflicts += 1
            Thread.pass # the winner's commit may still be waiting for its fsync
          end
        end
        conflicts
      end
    end

    readers = Array.new(READERS) do |r|
      Thread.new do
        rounds = 0
        last_seen = {}
        loop do
          rounds += 1
          # A transaction is visible whole: the x written just before the visible y, in
          # the same transaction, is what x was at y's transaction time.
          if (fy = store.read_fact(store: :pairs, key: "pair-y"))
            fx = store.read_fact(store: :pairs, key: "pair-x", as_of: fy.transaction_time)
            problems << "pair-x #{fx&.value.inspect} beside pair-y #{fy.value.inspect}" unless fx&.value&.dig(:batch) == fy.value[:batch]
          end
          events = store.history(store: :events)
          events.group_by { |f| f.value[:batch] }.each do |tag, fs|
            problems << "half transaction #{tag}: #{fs.size} of #{fs.first.value[:size]} events" unless fs.size == fs.first.value[:size]
          end
          times = store.fact_log_all.map(&:transaction_time)
          problems << "log out of transaction-time order" unless times.each_cons(2).all? { |a, b| b > a }
          key = "hot-#{(r + rounds) % HOT}"
          hist = store.history(store: :hot, key: key)
          problems << "causation chain of #{key} broken" unless hist.empty? || chain_ok?(hist)
          # Reads never go back in time.
          if (f = store.read_fact(store: :hot, key: key))
            problems << "#{key} went back in time" if last_seen[key] && f.transaction_time < last_seen[key]
            last_seen[key] = f.transaction_time
          end
          slice = store.history_partition(store: :events, partition_key: :order, partition_value: "o0")
          unless slice.each_cons(2).all? { |a, b| b.transaction_time > a.transaction_time }
            bad = slice.each_cons(2).find_index { |a, b| b.transaction_time <= a.transaction_time }
            problems << "partition slice out of order at #{bad}/#{slice.size}: #{slice[bad, 2].map { |f| [f.id, f.transaction_time, f.value] }.inspect} dup=#{slice.map(&:id).uniq.size != slice.size}"
          end
          count = store.fact_count
          problems << "fact_count went down" if last_seen[:count] && count < last_seen[:count]
          last_seen[:count] = count
          break if done

          Thread.pass
        end
        rounds
      end
    end

    checkpointer = Thread.new do
      reports = []
      loop do
        reports << store.checkpoint
        break if done

        Thread.pass
      end
      reports
    end

    written = writers.map(&:value) + appenders.map(&:value)
    batches = transactors.map(&:value)
    conflicts = counters.map(&:value)
    done = true
    reader_rounds = readers.map(&:value)
    reports = checkpointer.value

    expect(problems.size).to eq(0), Array.new(problems.size) { problems.pop }.uniq.first(5).join("\n")
    expect(reader_rounds).to all(be >= 1)

    log = store.fact_log_all
    returned = written.flatten + batches.flatten
    expected_count = WRITERS * WRITES + 2 * APPENDS + TRANSACTORS * TRANSACTIONS * 3 +
                     batches.flatten.count { |f| f.store == :events } + COUNTERS * INCREMENTS
    expect(log.size).to eq(expected_count)
    expect(store.fact_count).to eq(log.size)
    expect(log.map(&:id).uniq.size).to eq(log.size)
    expect(returned.map(&:id) - log.map(&:id)).to eq([])
    expect(log.map(&:transaction_time).each_cons(2).all? { |a, b| b > a }).to be(true)

    position = log.each_with_index.to_h { |f, i| [f.id, i] }
    written.each { |facts| expect(facts.map { |f| position[f.id] }).to eq(facts.map { |f| position[f.id] }.sort) }
    batches.each do |per_thread|
      per_thread.each do |tx|
        first = position[tx.first.id]
        expect(tx.map { |f| position[f.id] }).to eq((first...first + tx.size).to_a)
      end
      expect(per_thread.map { |tx| position[tx.first.id] }).to eq(per_thread.map { |tx| position[tx.first.id] }.sort)
    end

    (%w[pair-x pair-y].map { |k| [:pairs, k] } + (Array.new(HOT) { |i| "hot-#{i}" } + Array.new(WRITERS) { |w| "own-#{w}" }).map { |k| [:hot, k] } +
      [[:counter, "c"]]).each do |s, k|
      hist = store.history(store: s, key: k)
      expect(chain_ok?(hist)).to be(true), "causation chain of #{s}/#{k}"
    end
    %w[o0 o1 o2].each do |o|
      expect(store.history_partition(store: :events, partition_key: :order, partition_value: o).map(&:id))
        .to eq(log.select { |f| f.store == :events && f.value[:order] == o }.map(&:id))
    end
    expect(store.history(store: :counter, key: "c").map(&:value)).to eq((1..COUNTERS * INCREMENTS).to_a)
    expect(store.read(store: :counter, key: "c")).to eq(COUNTERS * INCREMENTS)

    if ENV["STRESS_SCALE"] || ENV["CRASH_VERBOSE"]
      puts "\nthread stress: #{log.size} facts, reader rounds #{reader_rounds}, OCC conflicts #{conflicts.sum}, " \
           "#{reports.size} checkpoints"
    end
    expect(reports).not_to be_empty
    expect(reports.map { |r| r[:fact_count] }.each_cons(2).all? { |a, b| b >= a }).to be(true)
    before = log.map(&:to_h)
    store.close

    L.open(wal_path) do |s|
      expect(s.open_report[:snapshot][:status]).to eq(:loaded)
      expect(s.open_report[:torn_tail]).to be_nil
      expect(s.fact_log_all.map(&:to_h)).to eq(before)
    end
  end
end
