// KurrentDB's tutorial, "Counting Xbox One S" (samples/http-api/xbox-one-s-counter.js): documented state {"count": 3}.
fromAll()
.when({
    $init: function(){
        return {
            count: 0
        }
    },
    ItemAdded: function(s,e){
        if(e.body.Description.indexOf("Xbox One S") >= 0){
            s.count += 1;
        }
    }
})
