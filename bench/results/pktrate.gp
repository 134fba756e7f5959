set terminal pngcairo size 1100,520 font 'sans,10'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set xtics rotate by -30
set key top right
set yrange [0:*]
set output 'pktrate.png'
set title 'Established-flow forwarding, 60-byte frames, 10000 flows (Mpps at the sink; median of 3 runs, bars: min-max)'
plot 'pktrate.dat' using 2:3:4:xtic(1) title 'TCP ACK' lc rgb '#3366cc', '' using 5:6:7 title 'UDP' lc rgb '#109618'
