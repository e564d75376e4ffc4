# frozen_string_literal: true

require_relative "spec_helper"
require "tmpdir"

# A forked child shares the parent's WAL descriptor and lock: it must not commit, and must
# not flush the parent's buffered commits when it closes or exits.
RSpec.describe "a file-backed store inherited across fork" do
  it "refuses writes in the child and leaves the parent's log whole" do
    Dir.mktmpdir do |dir|
      path = File.join(dir, "fork.wal")
      store = Igniter::Ledger::LedgerStore.open(path, durability: :none)
      store.write(store: :a, key: "k", value: 1) # still in the process's buffer
      child = fork do
        code =
          begin
            store.write(store: :a, key: "child", value: 2)
            1
          rescue Igniter::Ledger::Error => e
            e.message.include?("forked child") ? 0 : 2
          end
        code = 3 unless store.read(store: :a, key: "k") == 1 # reads still work
        store.close # must not write the parent's buffer
        exit(code)  # a normal exit: finalizers run and must not flush either
      end
      Process.wait(child)
      expect($?.exitstatus).to eq(0)
      store.write(store: :a, key: "k", value: 3)
      store.close
      reopened = Igniter::Ledger::LedgerStore.open(path)
      expect(reopened.history(store: :a, key: "k").map(&:value)).to eq([1, 3])
      expect(reopened.fact_count).to eq(2)
      reopened.close
    end
  end
end
