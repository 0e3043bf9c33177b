// KurrentDB's tutorial, items per cart (samples/http-api/projections/shopping-cart-counter.js): documented state
// of partition shoppingCart-b989fe21-9469-4017-8d71-9820b8dd1164 {"count": 2}.
fromCategory('shoppingCart')
.foreachStream()
.when({
    $init: function(){
        return {
            count: 0
        }
    },
    ItemAdded: function(s,e){
        s.count += 1;
    }
})
