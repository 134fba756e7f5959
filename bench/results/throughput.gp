set terminal pngcairo size 1100,520 font 'sans,10'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set xtics rotate by -30
set key top right
set yrange [0:*]
set output 'throughput.png'
set multiplot layout 1,2 title 'HTTP through the director (wrk -c15, median of 3 rounds, bars: min-max)'
set title 'keep-alive: requests/s'
plot 'http.dat' using 2:3:4:xtic(1) title 'req/s' lc rgb '#3366cc'
set title 'Connection: close: new connections/s'
plot 'http.dat' using 5:6:7:xtic(1) title 'conn/s' lc rgb '#dc3912'
unset multiplot
