// RouteProduce is inline (produce_route.h): this unit only checks that the header stands alone.
#include "dataplane/produce_route.h"
