"""The query layer shared by every transport: ``parse`` (parameters -> PriceQuery)
and ``run`` (PriceQuery -> PriceResult). It never names a transport."""
