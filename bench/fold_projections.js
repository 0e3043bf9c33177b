// The projections the engine benchmark folds: one stream projection, one aggregate.
projections.projectStream('Account').named('Balance').by({
  $init: function () { return { balance: 0, deposits: 0, withdrawals: 0, last: null }; },
  Deposited: function (state, evt) { state.balance += evt.amount; state.deposits += 1; state.last = evt.at; },
  Withdrawn: function (state, evt) { state.balance -= evt.amount; state.withdrawals += 1; state.last = evt.at; }
});
projections.aggregate('Bank').by({
  $init: function () { return { deposited: 0, withdrawn: 0, events: 0 }; },
  Deposited: function (state, evt) { state.deposited += evt.amount; state.events += 1; },
  Withdrawn: function (state, evt) { state.withdrawn += evt.amount; state.events += 1; }
});
